using Mta.Mail.Routing;

namespace Mta.Mail.Feedback;

/// <summary>
/// The domains whose mail comes back to the MTA as reports (<c>Mta:BounceDomains</c>): each written <c>domain</c> or
/// <c>domain=tenant</c>. Mail from a sender in one of them leaves with a VERP return path per recipient; mail to one of
/// them is accepted from anyone and read as a delivery status notification or a feedback report, never delivered.
/// The tenant is whose suppression list and webhooks its reports go to.
/// </summary>
public sealed class BounceDomains
{
    private readonly Dictionary<string, string?> _domains;

    private BounceDomains(Dictionary<string, string?> domains) => _domains = domains;

    /// <summary>None configured.</summary>
    public static BounceDomains None { get; } = new(new Dictionary<string, string?>());

    /// <summary>Parses the entries; throws <see cref="FormatException"/> naming a bad one.</summary>
    public static BounceDomains Parse(IEnumerable<string> entries)
    {
        var domains = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var entry in entries.Select(e => e.Trim()).Where(e => e.Length > 0))
        {
            var (name, tenant) = entry.IndexOf('=') is var eq and >= 0 ? (entry[..eq], entry[(eq + 1)..]) : (entry, null);
            var domain = Address.NormalizeDomain(name);
            if (domain.Length == 0 || !domain.Contains('.'))
                throw new FormatException($"'{entry}' is not a domain, or domain=tenant");
            if (tenant is not null && (tenant.Length == 0 || tenant.Length > 64 || !tenant.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
                throw new FormatException($"'{entry}': a tenant is 1-64 letters, digits, '-', '_' or '.'");
            if (!domains.TryAdd(domain, tenant)) throw new FormatException($"'{entry}': {domain} again");
        }
        return new BounceDomains(domains);
    }

    /// <summary>Whether any are configured.</summary>
    public bool Any => _domains.Count > 0;

    /// <summary>Whether <paramref name="address"/> is in a bounce domain.</summary>
    public bool Contains(string address) => _domains.ContainsKey(Address.DomainOf(address));

    /// <summary>The tenant of <paramref name="address"/>'s bounce domain (null: none, the default lists).</summary>
    public string? TenantOf(string address) => _domains.GetValueOrDefault(Address.DomainOf(address));

    /// <summary>The domains, for the relay check.</summary>
    public IEnumerable<string> Domains => _domains.Keys;
}

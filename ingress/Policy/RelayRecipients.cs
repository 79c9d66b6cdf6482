using Mta.Mail.Configuration;
using Mta.Mail.Routing;

namespace Mta.Ingress.Policy;

/// <summary>
/// Postfix's <c>relay_recipient_maps</c>: the addresses that exist in the relay domains, one per line (<c>user@domain</c>,
/// or <c>@domain</c> for every user of a domain), read at start and again when the file changes. With a table, mail for an unknown
/// address in a relay domain is refused at RCPT instead of being accepted and bounced (backscatter). Without one, every
/// address in the relay domains is accepted, as Postfix does with an empty <c>relay_recipient_maps</c>.
/// </summary>
public sealed class RelayRecipients(string? file)
{
    private readonly WatchedFile<HashSet<string>>? _entries = string.IsNullOrEmpty(file) ? null : new(file, AddressList.Parse);

    /// <summary>True when a table is configured.</summary>
    public bool Configured => _entries is not null;

    /// <summary>Whether <paramref name="address"/> (in a relay domain) is listed, itself or by its domain.</summary>
    public bool Exists(string address)
    {
        if (_entries is null) return true;
        var entries = _entries.Value;
        return entries.Contains(address) || entries.Contains("@" + Address.DomainOf(address));
    }
}

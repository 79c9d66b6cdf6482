using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Routing;

namespace Mta.Mail.Rewriting;

/// <summary>
/// Cleanup's envelope address rewriting, in Postfix's order: <c>sender_canonical_maps</c> then <c>canonical_maps</c>
/// for the sender; <c>recipient_canonical_maps</c>, <c>canonical_maps</c>, then <c>virtual_alias_maps</c> (one-to-many,
/// recursive) for each recipient. Lookups follow canonical(5)/virtual(5): <c>user+ext@domain</c>, <c>user@domain</c>,
/// then <c>user+ext</c> and <c>user</c> for the local domains, then <c>@domain</c>; an extension that was not part of
/// the matched key is carried over to the result (<c>propagate_unmatched_extensions</c>). Header addresses are left
/// alone, as Postfix leaves them for mail from network clients (<c>local_header_rewrite_clients</c>).
/// </summary>
public sealed class AddressRewriter
{
    private readonly LookupTable _canonical;
    private readonly LookupTable _senderCanonical;
    private readonly LookupTable _recipientCanonical;
    private readonly LookupTable _virtual;
    private readonly HashSet<string> _localDomains;
    private readonly string _firstLocalDomain;
    private readonly string _delimiter;
    private readonly int _expansionLimit;
    private readonly int _recursionLimit;

    /// <summary>Loads the configured maps (a broken file stops the start with its file and line).</summary>
    public AddressRewriter(IOptions<MtaOptions> options, ILogger<AddressRewriter> log)
    {
        var o = options.Value;
        void Warn(string error) => log.LogWarning("warning: map file changed but could not be read, the previous version stays in use: {Error}", error);
        _canonical = LookupTable.Load(o.CanonicalMapsFile, Warn);
        _senderCanonical = LookupTable.Load(o.SenderCanonicalMapsFile, Warn);
        _recipientCanonical = LookupTable.Load(o.RecipientCanonicalMapsFile, Warn);
        _virtual = LookupTable.Load(o.VirtualAliasMapsFile, Warn);
        _localDomains = new HashSet<string>(o.LocalDomains.Select(d => d.TrimEnd('.')), StringComparer.OrdinalIgnoreCase);
        _firstLocalDomain = o.LocalDomains.Count > 0 ? o.LocalDomains[0] : "localhost";
        _delimiter = o.RecipientDelimiter ?? "";
        _expansionLimit = o.VirtualAliasExpansionLimit;
        _recursionLimit = o.VirtualAliasRecursionLimit;
    }

    /// <summary>The envelope sender after canonical mapping; the null sender stays null.</summary>
    public string RewriteSender(string sender)
        => sender.Length == 0 ? sender : Canonical(_canonical, Canonical(_senderCanonical, sender));

    /// <summary>
    /// The final recipients for the envelope's recipients, each with the recipient it came from, without
    /// duplicates (first wins); and the recipients whose expansion failed, with a reason to bounce them for.
    /// </summary>
    public RewrittenRecipients RewriteRecipients(IEnumerable<string> recipients)
    {
        var result = new List<(string Address, string Original)>();
        var failures = new List<(string Recipient, string Reason)>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var original in recipients)
        {
            var canonical = Canonical(_canonical, Canonical(_recipientCanonical, original));
            var expanded = new List<string>();
            var error = Expand(canonical, 0, [], expanded);
            if (error is not null)
            {
                failures.Add((original, error));
                continue;
            }
            foreach (var address in expanded)
                if (seen.Add(address))
                    result.Add((address, original));
        }
        return new RewrittenRecipients(result, failures);
    }

    private string? Expand(string address, int depth, HashSet<string> chain, List<string> into)
    {
        if (depth > _recursionLimit)
            return "5.4.6 unreasonable virtual_alias_maps map nesting for " + address;
        var value = Lookup(_virtual, address, out var extension);
        if (value is null)
        {
            into.Add(address);
            return into.Count > _expansionLimit ? "5.4.6 unreasonable virtual_alias_maps map expansion size for " + address : null;
        }
        chain.Add(address);
        foreach (var target in value.Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Result(address, target, extension);
            // virtual(5): an address that expands to itself (directly or around a loop) is delivered, not expanded again.
            var error = chain.Contains(next) ? Terminal(next, into) : Expand(next, depth + 1, chain, into);
            if (error is not null) return error;
        }
        chain.Remove(address);
        return null;

        string? Terminal(string a, List<string> list)
        {
            list.Add(a);
            return list.Count > _expansionLimit ? "5.4.6 unreasonable virtual_alias_maps map expansion size for " + a : null;
        }
    }

    private string Canonical(LookupTable table, string address)
    {
        var value = Lookup(table, address, out var extension);
        if (value is null) return address;
        // canonical(5) maps to one address; anything after it is a mistake in the file, so the first one counts.
        var target = value.Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[0];
        return Result(address, target, extension);
    }

    /// <summary>
    /// Looks <paramref name="address"/> up in canonical(5)/virtual(5) order. <paramref name="extension"/> is the
    /// address extension (with its delimiter) when the key that matched did not contain it, so it is carried over.
    /// </summary>
    private string? Lookup(LookupTable table, string address, out string extension)
    {
        extension = "";
        if (table.Count == 0) return null;
        var local = Address.LocalPartOf(address);
        var domain = Address.DomainOf(address);
        var (user, ext) = SplitExtension(local);
        string? value;
        if ((value = table.Find(address)) is not null) return value;
        if (ext.Length > 0 && (value = table.Find(user + "@" + domain)) is not null) { extension = ext; return value; }
        if (_localDomains.Contains(domain))
        {
            if ((value = table.Find(local)) is not null) return value;
            if (ext.Length > 0 && (value = table.Find(user)) is not null) { extension = ext; return value; }
        }
        return table.Find("@" + domain);
    }

    private (string User, string Extension) SplitExtension(string local)
    {
        if (_delimiter.Length == 0) return (local, "");
        var at = local.IndexOfAny(_delimiter.ToCharArray());
        // Postfix keeps "owner-" style names and a leading delimiter whole: an empty user has no extension.
        return at <= 0 ? (local, "") : (local[..at], local[at..]);
    }

    private string Result(string address, string target, string extension)
    {
        // A bare name is in this system's first local domain (Postfix appends $myorigin).
        if (!target.Contains('@')) target += "@" + _firstLocalDomain;
        // "@other.domain": keep the local part, change the domain (virtual(5) domain aliasing).
        if (target.StartsWith('@')) return Address.LocalPartOf(address) + target;
        if (extension.Length == 0) return target;
        var at = target.LastIndexOf('@');
        return at < 0 ? target + extension : target[..at] + extension + target[at..];
    }
}

/// <summary>The outcome of recipient rewriting.</summary>
/// <param name="Recipients">Final recipient addresses, each with the envelope recipient it came from.</param>
/// <param name="Failures">Envelope recipients that could not be expanded, with an RFC 3463 reason.</param>
public sealed record RewrittenRecipients(
    IReadOnlyList<(string Address, string Original)> Recipients,
    IReadOnlyList<(string Recipient, string Reason)> Failures);

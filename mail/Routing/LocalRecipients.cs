using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Mail.Routing;

/// <summary>
/// Postfix's local_recipient_maps: the users that exist in the local domains, from a file of one
/// local part (or full address) per line, read at start and again when it changes (<see cref="WatchedFile{T}"/>). With a table, mail for an unknown
/// local user is refused at RCPT, so the system never accepts mail it would have to bounce (backscatter).
/// Without one, every local part is accepted. <c>postmaster</c> always exists (RFC 5321 §4.5.1).
/// </summary>
public sealed class LocalRecipients(IOptions<MtaOptions> options)
{
    private readonly WatchedFile<HashSet<string>>? _names = string.IsNullOrEmpty(options.Value.LocalRecipientsFile)
        ? null : new(options.Value.LocalRecipientsFile, AddressList.Parse);

    /// <summary>True when a table is configured.</summary>
    public bool Configured => _names is not null;

    /// <summary>Whether <paramref name="address"/> (in a local domain) names an existing user.</summary>
    public bool Exists(string address)
    {
        var local = Address.LocalPartOf(address);
        if (local.Equals("postmaster", StringComparison.OrdinalIgnoreCase)) return true;
        // A name that cannot be a mailbox is no user, table or not: refused at RCPT rather than bounced later.
        if (!LocalMailbox.IsSafeName(local)) return false;
        if (_names is null) return true;
        var names = _names.Value;
        return names.Contains(local) || names.Contains(address);
    }
}

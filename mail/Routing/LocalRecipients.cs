using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Mail.Routing;

/// <summary>
/// Postfix's local_recipient_maps: the users that exist in the local domains, from a file of one
/// local part (or full address) per line, read again when it changes. With a table, mail for an unknown
/// local user is refused at RCPT, so the system never accepts mail it would have to bounce (backscatter).
/// Without one, every local part is accepted. <c>postmaster</c> always exists (RFC 5321 §4.5.1).
/// </summary>
public sealed class LocalRecipients(IOptions<MtaOptions> options)
{
    private readonly string? _file = options.Value.LocalRecipientsFile;
    private readonly Lock _lock = new();
    private HashSet<string> _names = new(AsciiCaseComparer.Instance);
    private DateTime _stamp = DateTime.MinValue;

    /// <summary>True when a table is configured.</summary>
    public bool Configured => !string.IsNullOrEmpty(_file);

    /// <summary>Whether <paramref name="address"/> (in a local domain) names an existing user.</summary>
    public bool Exists(string address)
    {
        var local = Address.LocalPartOf(address);
        if (local.Equals("postmaster", StringComparison.OrdinalIgnoreCase)) return true;
        // A name that cannot be a mailbox is no user, table or not: refused at RCPT rather than bounced later.
        if (!LocalMailbox.IsSafeName(local)) return false;
        if (!Configured) return true;
        lock (_lock)
        {
            var stamp = File.GetLastWriteTimeUtc(_file!);
            if (stamp != _stamp)
            {
                _names = new HashSet<string>(File.ReadAllLines(_file!).Select(l => l.Trim())
                    .Where(l => l.Length > 0 && l[0] != '#'), AsciiCaseComparer.Instance);
                _stamp = stamp;
            }
            return _names.Contains(local) || _names.Contains(address);
        }
    }
}

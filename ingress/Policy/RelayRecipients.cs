using Mta.Mail.Routing;

namespace Mta.Ingress.Policy;

/// <summary>
/// Postfix's <c>relay_recipient_maps</c>: the addresses that exist in the relay domains, one per line (<c>user@domain</c>,
/// or <c>@domain</c> for every user of a domain), read again when the file changes. With a table, mail for an unknown
/// address in a relay domain is refused at RCPT instead of being accepted and bounced (backscatter). Without one, every
/// address in the relay domains is accepted, as Postfix does with an empty <c>relay_recipient_maps</c>.
/// </summary>
public sealed class RelayRecipients(string? file)
{
    private readonly Lock _lock = new();
    private HashSet<string> _entries = new(Mta.Mail.Routing.AsciiCaseComparer.Instance);
    private DateTime _stamp = DateTime.MinValue;

    /// <summary>True when a table is configured.</summary>
    public bool Configured => !string.IsNullOrEmpty(file);

    /// <summary>Whether <paramref name="address"/> (in a relay domain) is listed, itself or by its domain.</summary>
    public bool Exists(string address)
    {
        if (!Configured) return true;
        lock (_lock)
        {
            var stamp = File.GetLastWriteTimeUtc(file!);
            if (stamp != _stamp)
            {
                _entries = new HashSet<string>(File.ReadAllLines(file!).Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#'),
                    Mta.Mail.Routing.AsciiCaseComparer.Instance);
                _stamp = stamp;
            }
            return _entries.Contains(address) || _entries.Contains("@" + Address.DomainOf(address));
        }
    }
}

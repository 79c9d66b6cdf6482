using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Rewriting;
using Mta.Mail.Routing;

namespace Mta.Mail.Submission;

/// <summary>
/// Postfix's <c>smtpd_sender_login_maps</c> with <c>reject_authenticated_sender_login_mismatch</c>: which logins may
/// use which sender addresses, from a file of <c>address logins</c> lines (<c>alice@example.org alice</c>,
/// <c>@example.org alice, bob</c>: an address's own entry first, then its domain's). With a table, an authenticated
/// client may only use the addresses its login owns (MAIL FROM), and its mail is DKIM-signed only for domains the
/// login owns an address in; without one, any address, as Postfix without the restriction. Re-read when it changes.
/// </summary>
public sealed class SenderLogins(IOptions<MtaOptions> options, ILogger<SenderLogins> log)
{
    private readonly LookupTable _table = LookupTable.Load(options.Value.SenderLoginMapsFile,
        e => log.LogWarning("warning: sender login map changed but could not be read, the previous version stays in use: {Error}", e));

    /// <summary>True when a table is configured.</summary>
    public bool Configured => !string.IsNullOrEmpty(options.Value.SenderLoginMapsFile);

    /// <summary>Whether <paramref name="login"/> may send as <paramref name="sender"/> (the null sender always).</summary>
    public bool Owns(string login, string sender)
    {
        if (!Configured || sender.Length == 0) return true;
        var owners = _table.Find(sender) ?? _table.Find("@" + Address.DomainOf(sender));
        return owners is not null && Logins(owners).Contains(login, StringComparer.Ordinal);
    }

    /// <summary>Whether <paramref name="login"/> owns some address in <paramref name="domain"/> (for DKIM signing).</summary>
    public bool OwnsDomain(string login, string domain)
    {
        if (!Configured) return true;
        if (_table.Find("@" + Address.NormalizeDomain(domain)) is { } owners && Logins(owners).Contains(login, StringComparer.Ordinal)) return true;
        return _table.Entries.Any(e => e.Key.Contains('@') && !e.Key.StartsWith('@')
            && Address.DomainOf(e.Key) == Address.NormalizeDomain(domain) && Logins(e.Value).Contains(login, StringComparer.Ordinal));
    }

    private static string[] Logins(string owners) => owners.Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
}

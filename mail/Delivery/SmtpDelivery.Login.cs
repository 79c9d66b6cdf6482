using Microsoft.Extensions.Logging;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery.Sasl;

namespace Mta.Mail.Delivery;

// The login at a next hop that wants one (Postfix's smtp_sasl_* settings): only inside TLS, a mechanism both speak,
// and a refusal that is the delivery's outcome, never the credentials in a log line.
public sealed partial class SmtpDelivery
{
    /// <summary>
    /// Two accounts at one provider are two destinations for traffic shaping (each with the site's limits): the
    /// provider counts and throttles them apart. The storage key gets a digest of the user name, never the name itself.
    /// </summary>
    private static Shaping.ShapingSite ForAccount(Shaping.ShapingSite site, SaslAccount? account)
    {
        if (account is null) return site;
        var digest = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(account.User)))[..16];
        return site with { Key = site.Key + "|" + digest, Name = site.Name + " as " + account.User };
    }

    /// <summary>The code <see cref="LoginAsync"/> gives a refused login that is final (535 with soft bounce off).</summary>
    private const int LoginRefused = -535;

    /// <summary>
    /// Logs in on a new connection: the connection when it may carry mail, else null with the error (the connection is
    /// closed) and <see cref="LoginRefused"/> when the refusal is final.
    /// </summary>
    private async Task<(OutboundSmtpConnection? Connection, string Error, int Code)> LoginAsync(DeliveryJob job, OutboundSmtpConnection connection,
        SaslAccount account, string relay, CancellationToken ct)
    {
        var (error, code) = await LoginErrorAsync(job.NextHop, connection, account, relay, ct);
        if (error is null) return (connection, "", 0);
        _log.LogInformation("{QueueId}: SASL authentication failed; {Error}", job.MessageId, error);
        await connection.QuitAsync();
        return (null, error, code);
    }

    private async Task<(string? Error, int Code)> LoginErrorAsync(NextHop hop, OutboundSmtpConnection connection, SaslAccount account, string relay,
        CancellationToken ct)
    {
        if (!connection.Extensions.TryGetValue("AUTH", out var offered))
            return (null, 0); // as Postfix: a server that offers no AUTH gets the mail without a login, and may refuse it
        if (connection.Tls is null && !SaslPasswordMap.Keys(hop, "", false).Any(k => _options.SmtpSaslPlaintextNextHops.Contains(k, StringComparer.OrdinalIgnoreCase)))
            return ($"4.7.0 not sending a login to {relay} without TLS (Mta:SmtpSaslPlaintextNextHops)", 0);
        if (OutboundSmtpConnection.ChooseMechanism(offered, _options.SmtpSaslMechanismFilter) is not { } mechanism)
            return ($"4.7.0 no SASL mechanism in common with {relay} (it offers {offered})", 0);
        var reply = await connection.AuthenticateAsync(account, mechanism, ct);
        if (reply.Positive)
        {
            _log.LogInformation("SASL login as {User} to {Relay} by {Mechanism}", account.User, relay, mechanism);
            return (null, 0);
        }
        var text = $"server {relay} said: {reply.Text}";
        return reply.Code == 535 && !_options.SmtpSaslAuthSoftBounce ? (text, LoginRefused)
            : (reply.Code >= 500 ? $"4.7.0 {text} (soft bounce)" : text, reply.Code);
    }
}

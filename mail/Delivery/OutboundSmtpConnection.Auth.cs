using System.Net;
using MailKit.Security;
using Mta.Mail.Delivery.Sasl;

namespace Mta.Mail.Delivery;

// Client AUTH (RFC 4954) to a next hop that wants a login: the mechanism's exchange is MailKit's, the commands are ours.
public sealed partial class OutboundSmtpConnection
{
    /// <summary>The mechanisms this client speaks, in the order it prefers them when the server offers several.</summary>
    public static readonly IReadOnlyList<string> Mechanisms = ["XOAUTH2", "PLAIN", "LOGIN"];

    /// <summary>
    /// The mechanism to use: one the server offers, this client speaks, and <paramref name="filter"/> allows (Postfix's
    /// <c>smtp_sasl_mechanism_filter</c>; empty allows all). XOAUTH2 only when asked for by the filter (its "password"
    /// is a bearer token). Null when there is none.
    /// </summary>
    public static string? ChooseMechanism(string offered, IReadOnlyCollection<string> filter)
    {
        var server = offered.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(m => m.ToUpperInvariant()).ToHashSet();
        return Mechanisms.FirstOrDefault(m => server.Contains(m)
            && (filter.Count == 0 ? m != "XOAUTH2" : filter.Contains(m, StringComparer.OrdinalIgnoreCase)));
    }

    /// <summary>
    /// AUTH with <paramref name="account"/> by <paramref name="mechanism"/>: the server's final reply (235 when logged in).
    /// Nothing of the exchange is logged; the replies carry no credentials.
    /// </summary>
    public async Task<SmtpReply> AuthenticateAsync(SaslAccount account, string mechanism, CancellationToken ct)
    {
        SaslMechanism sasl = mechanism switch
        {
            "XOAUTH2" => new SaslMechanismOAuth2(account.User, account.Password),
            "PLAIN" => new SaslMechanismPlain(new NetworkCredential(account.User, account.Password)),
            _ => new SaslMechanismLogin(new NetworkCredential(account.User, account.Password)),
        };
        var reply = await CommandAsync("AUTH " + mechanism + (sasl.SupportsInitialResponse ? " " + sasl.Challenge(null, ct) : ""), ct);
        for (var round = 0; reply.Code == 334 && round < 5; round++)
        {
            // After the mechanism is done, a 334 carries the server's error (XOAUTH2): an empty line ends the exchange.
            var challenge = reply.Text.Length > 4 ? reply.Text[4..] : "";
            reply = await CommandAsync(sasl.IsAuthenticated ? "" : sasl.Challenge(challenge, ct), ct);
        }
        return reply;
    }
}

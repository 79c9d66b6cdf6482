using System.Text;

namespace Mta.Ingress.Auth;

/// <summary>A name and password from a finished exchange, to be checked (off the session's I/O path).</summary>
public sealed record SaslCredentials(string Name, string Password, string Mechanism);

/// <summary>
/// What the session does next in an exchange: send a challenge (<c>334</c>), refuse (an SMTP reply), or check the
/// credentials. Exactly one is set.
/// </summary>
public readonly record struct SaslStep(string? Challenge, string? Refusal, SaslCredentials? Credentials)
{
    internal static SaslStep Ask(string challenge) => new(challenge, null, null);
    internal static SaslStep Refuse(string reply) => new(null, reply, null);
    internal static SaslStep Check(SaslCredentials credentials) => new(null, null, credentials);
}

/// <summary>
/// The server side of an AUTH exchange (RFC 4954) for PLAIN (RFC 4616) and LOGIN: decodes the client's responses and
/// says what to answer, without I/O — Postfix's smtpd_sasl_proto.c to the session's smtpd.c. The session checks the
/// credentials and sends every reply; nothing of the exchange is logged.
/// </summary>
public sealed class SaslExchange
{
    private enum Step { None, PlainResponse, LoginName, LoginPassword }

    private Step _step;
    private string _name = "";

    /// <summary>True while the client owes a response to a challenge: its next line is authentication data, not a command.</summary>
    public bool InProgress => _step != Step.None;

    /// <summary>The AUTH command: <paramref name="mechanism"/> and, when given, its initial response.</summary>
    public SaslStep Start(string mechanism, string? initial)
    {
        switch (mechanism.ToUpperInvariant())
        {
            case "PLAIN" when initial is null:
                _step = Step.PlainResponse;
                return SaslStep.Ask("");
            case "PLAIN":
                return Plain(initial);
            case "LOGIN" when initial is null:
                _step = Step.LoginName;
                return SaslStep.Ask("VXNlcm5hbWU6"); // "Username:"
            case "LOGIN":
                return LoginName(initial);
            default:
                return SaslStep.Refuse("504 5.5.4 Unrecognized authentication type");
        }
    }

    /// <summary>The client's response to the last challenge; <c>*</c> cancels (RFC 4954 §4).</summary>
    public SaslStep Continue(string line)
    {
        var step = _step;
        _step = Step.None;
        if (line == "*") return SaslStep.Refuse("501 5.7.0 Authentication aborted");
        return step switch
        {
            Step.PlainResponse => Plain(line),
            Step.LoginName => LoginName(line),
            Step.LoginPassword when Decode(line) is { } password => SaslStep.Check(new SaslCredentials(_name, password, "LOGIN")),
            _ => Malformed,
        };
    }

    private SaslStep LoginName(string response)
    {
        if (Decode(response) is not { } name) return Malformed;
        _name = name;
        _step = Step.LoginPassword;
        return SaslStep.Ask("UGFzc3dvcmQ6"); // "Password:"
    }

    /// <summary>RFC 4616: <c>authzid NUL authcid NUL passwd</c>; an authzid other than the user is refused.</summary>
    private static SaslStep Plain(string response)
    {
        var fields = Decode(response)?.Split('\0');
        if (fields is not { Length: 3 } || fields[1].Length == 0) return Malformed;
        if (fields[0].Length > 0 && fields[0] != fields[1]) return SaslStep.Refuse("535 5.7.8 Error: authentication failed");
        return SaslStep.Check(new SaslCredentials(fields[1], fields[2], "PLAIN"));
    }

    private static SaslStep Malformed => SaslStep.Refuse("501 5.5.2 Error: malformed authentication response");

    private static string? Decode(string base64)
    {
        try { return Encoding.UTF8.GetString(Convert.FromBase64String(base64.Trim())); }
        catch (FormatException) { return null; }
    }
}

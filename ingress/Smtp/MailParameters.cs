using Mta.Mail.Contracts;

namespace Mta.Ingress.Smtp;

/// <summary>
/// The ESMTP parameters of <c>MAIL FROM</c>, checked: SIZE (RFC 1870) against the limit, BODY (RFC 6152), RET and
/// ENVID (RFC 3461), SMTPUTF8 (RFC 6531), and Postfix's XVERP. What the transaction keeps, or the reply that refuses them.
/// </summary>
/// <param name="Ret"><c>FULL</c> or <c>HDRS</c>, when given.</param>
/// <param name="EnvelopeId">ENVID, decoded from xtext, when given.</param>
/// <param name="SmtpUtf8">The client declared SMTPUTF8.</param>
public sealed record MailParameters(string? Ret, string? EnvelopeId, bool SmtpUtf8)
{
    /// <summary>XVERP: the VERP delimiters asked for (empty: the configured ones); null when not asked.</summary>
    public string? Verp { get; init; }

    /// <summary>Checks <paramref name="parameters"/>; null with <paramref name="refusal"/> set when one is refused.</summary>
    public static MailParameters? Parse(IEnumerable<KeyValuePair<string, string>> parameters, bool esmtp, long sizeLimit, out string refusal)
    {
        refusal = "";
        string? ret = null, envid = null, verp = null;
        var utf8 = false;
        foreach (var (key, value) in parameters)
        {
            if (!esmtp) { refusal = "555 5.5.4 Unsupported option: " + key; return null; }
            switch (key)
            {
                case "SIZE" when !long.TryParse(value, out var size) || size < 0:
                    refusal = "501 5.5.4 Bad message size syntax";
                    return null;
                case "SIZE" when long.Parse(value) > sizeLimit:
                    refusal = "552 5.3.4 Message size exceeds fixed limit";
                    return null;
                case "SIZE":
                    break;
                case "BODY" when value is not ("7BIT" or "8BITMIME"):
                    refusal = "501 5.5.4 Bad BODY parameter";
                    return null;
                case "BODY":
                    break;
                case "RET" when ret is not null || value.ToUpperInvariant() is not ("FULL" or "HDRS"):
                    refusal = "501 5.5.4 Bad RET parameter";
                    return null;
                case "RET":
                    ret = value.ToUpperInvariant();
                    break;
                // RFC 6531 §3.4: no value. A repeated SMTPUTF8 is harmless (Python's smtplib adds its own to the caller's).
                case "SMTPUTF8" when value.Length > 0:
                    refusal = "501 5.5.4 Bad SMTPUTF8 parameter";
                    return null;
                case "SMTPUTF8":
                    utf8 = true;
                    break;
                // RFC 3461 §4.4: printable US-ASCII only; it comes back in reports.
                case "ENVID" when envid is not null || Xtext.Decode(value) is not { Length: > 0 and <= 100 } decoded || !decoded.All(c => c is >= ' ' and <= '~'):
                    refusal = "501 5.5.4 Bad ENVID parameter";
                    return null;
                case "ENVID":
                    envid = Xtext.Decode(value);
                    break;
                // Postfix's XVERP, or XVERP=xy with two delimiters of the client's own.
                case "XVERP" when verp is not null || value.Length > 0 && !Mta.Mail.Feedback.VerpAddress.ValidDelimiters(value):
                    refusal = "501 5.5.4 Bad XVERP parameter";
                    return null;
                case "XVERP":
                    verp = value;
                    break;
                default:
                    refusal = "555 5.5.4 Unsupported option: " + key;
                    return null;
            }
        }
        return new MailParameters(ret, envid, utf8) { Verp = verp };
    }
}

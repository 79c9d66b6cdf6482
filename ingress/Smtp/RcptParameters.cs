using Mta.Mail.Contracts;

namespace Mta.Ingress.Smtp;

/// <summary>
/// The ESMTP parameters of <c>RCPT TO</c>, checked: NOTIFY and ORCPT (RFC 3461). What the recipient keeps, or the reply
/// that refuses them.
/// </summary>
/// <param name="Notify"><c>NEVER</c>, or a comma list of <c>SUCCESS</c>, <c>FAILURE</c>, <c>DELAY</c>; null when not given.</param>
/// <param name="OriginalRecipient">ORCPT as <c>type;address</c> with the address decoded, when given.</param>
public sealed record RcptParameters(string? Notify, string? OriginalRecipient)
{
    /// <summary>Checks <paramref name="parameters"/>; null with <paramref name="refusal"/> set when one is refused.</summary>
    public static RcptParameters? Parse(IEnumerable<KeyValuePair<string, string>> parameters, bool esmtp, out string refusal)
    {
        refusal = "";
        string? notify = null, orcpt = null;
        foreach (var (key, value) in parameters)
        {
            switch (key)
            {
                case "NOTIFY" when esmtp && notify is null:
                    notify = ParseNotify(value);
                    if (notify is null) { refusal = "501 5.5.4 Bad NOTIFY parameter"; return null; }
                    break;
                case "ORCPT" when esmtp && orcpt is null:
                    orcpt = ParseOriginalRecipient(value);
                    if (orcpt is null) { refusal = "501 5.5.4 Bad ORCPT parameter"; return null; }
                    break;
                default:
                    refusal = "555 5.5.4 Unsupported option: " + key;
                    return null;
            }
        }
        return new RcptParameters(notify, orcpt);
    }

    private static string? ParseNotify(string value)
    {
        var items = value.ToUpperInvariant().Split(',');
        var valid = items.Length == 1 && items[0] == "NEVER"
            || items.All(i => i is "SUCCESS" or "FAILURE" or "DELAY") && items.Distinct().Count() == items.Length;
        return valid ? string.Join(',', items) : null;
    }

    // RFC 3461 §4.2: addr-type is an atom; the address goes out again in reports and to the next hop.
    private static string? ParseOriginalRecipient(string value)
    {
        var semi = value.IndexOf(';');
        if (semi <= 0 || !value[..semi].All(c => char.IsAsciiLetterOrDigit(c) || c is '-')) return null;
        return Xtext.Decode(value[(semi + 1)..]) is { Length: > 0 and <= 500 } original && !original.Any(Paths.Unsafe)
            ? value[..semi] + ";" + original : null;
    }
}

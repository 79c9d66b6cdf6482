using Mta.Mail.Routing;

namespace Mta.Mail.Feedback;

/// <summary>
/// Variable envelope return paths (VERP, Postfix's <c>XVERP</c>): the sender <c>owner@domain</c> of mail to
/// <c>user@example.net</c> becomes <c>owner+user=example.net@domain</c> with the delimiters <c>+=</c>
/// (<c>Mta:VerpDelimiters</c>, Postfix <c>default_verp_delimiters</c>), so a bounce that comes back days later names the
/// recipient it is about, whatever it says inside. Pure.
/// </summary>
public static class VerpAddress
{
    /// <summary>Postfix's <c>default_verp_delimiters</c>.</summary>
    public const string DefaultDelimiters = "+=";

    /// <summary>The return path for <paramref name="recipient"/>'s copy of mail from <paramref name="owner"/>.</summary>
    public static string Encode(string owner, string recipient, string delimiters = DefaultDelimiters)
    {
        var at = owner.LastIndexOf('@');
        var rat = recipient.LastIndexOf('@');
        if (at < 0 || rat < 0) return owner;
        return $"{owner[..at]}{delimiters[0]}{recipient[..rat]}{delimiters[1]}{recipient[(rat + 1)..]}{owner[at..]}";
    }

    /// <summary>
    /// The owner and the recipient a return path names; null when it is no VERP address. The owner's local part ends at
    /// the first <c>+</c> and the recipient's domain starts after the last <c>=</c> (a domain has none), so a recipient's
    /// own <c>+tag</c> or <c>=</c> survives.
    /// </summary>
    public static (string Owner, string Recipient)? Decode(string address, string delimiters = DefaultDelimiters)
    {
        var at = address.LastIndexOf('@');
        if (at < 0) return null;
        var local = address[..at];
        var first = local.IndexOf(delimiters[0]);
        var last = local.LastIndexOf(delimiters[1]);
        if (first <= 0 || last <= first + 1 || last == local.Length - 1) return null;
        var domain = local[(last + 1)..];
        if (Address.NormalizeDomain(domain).Length == 0 || !domain.Contains('.')) return null;
        return (local[..first] + address[at..], $"{local[(first + 1)..last]}@{domain}");
    }

    /// <summary>Whether <paramref name="delimiters"/> are two characters that can stand in a local part's atom.</summary>
    public static bool ValidDelimiters(string delimiters)
        => delimiters.Length == 2 && delimiters[0] != delimiters[1] && delimiters.All(c => c is > ' ' and < (char)127 && !"\"(),.:;<>@[\\]".Contains(c));
}

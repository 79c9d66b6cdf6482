namespace Mta.Ingress.Smtp;

/// <summary>
/// Parses the argument of MAIL FROM and RCPT TO (RFC 5321 §4.1.2): a path in angle brackets,
/// then ESMTP parameters. A source route (<c>@a,@b:user@c</c>) is accepted and dropped, as §3.6.1 asks.
/// </summary>
public static class Paths
{
    /// <summary>RFC 5321 §4.5.3.1.3: the longest path, brackets included.</summary>
    public const int MaxPath = 256;

    /// <summary>
    /// Reads <c>&lt;address&gt; [KEY[=VALUE] ...]</c>. The null path <c>&lt;&gt;</c> gives an empty address.
    /// <paramref name="problem"/> carries a short reason for the reply when parsing fails.
    /// </summary>
    public static bool TryParse(string text, out string address, out List<KeyValuePair<string, string>> parameters, out string problem)
    {
        address = "";
        parameters = [];
        problem = "";
        text = text.TrimStart(' ');
        if (text.Length == 0 || text[0] != '<') { problem = ": address must be in <>"; return false; }

        var close = -1;
        var quoted = false;
        for (var i = 1; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\\' && quoted) { i++; continue; }
            if (c == '"') quoted = !quoted;
            else if (c == '>' && !quoted) { close = i; break; }
        }
        if (close < 0) { problem = ": missing >"; return false; }
        if (close + 1 > MaxPath) { problem = ": path too long"; return false; }

        var path = text[1..close];
        if (path.StartsWith('@'))
        {
            var colon = path.IndexOf(':');
            if (colon < 0) { problem = ": bad source route"; return false; }
            path = path[(colon + 1)..];
        }
        // RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted as a recipient.
        var postmaster = path.Equals("postmaster", StringComparison.OrdinalIgnoreCase);
        if (path.Length > 0 && !postmaster && !IsMailbox(path)) return false;
        address = path;

        foreach (var token in text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = token.IndexOf('=');
            var key = (eq < 0 ? token : token[..eq]).ToUpperInvariant();
            var value = eq < 0 ? "" : token[(eq + 1)..];
            parameters.Add(new(key, key == "BODY" ? value.ToUpperInvariant() : value));
        }
        return true;
    }

    /// <summary>
    /// A mailbox as RFC 5321 and RFC 6531 allow it: a local part of at most 64 octets, <c>@</c>, and a domain of at most
    /// 255 or an address literal. Nothing in it may be a control or format character (CR, LF, ESC, the C1 controls,
    /// bidirectional overrides) or undecodable UTF-8, quoted or not: an address reaches logs, headers and queue
    /// messages as it is, so it is checked here, once, at the edge.
    /// </summary>
    public static bool IsMailbox(string mailbox)
    {
        var at = mailbox.LastIndexOf('@');
        if (at <= 0 || at == mailbox.Length - 1) return false;
        var local = mailbox[..at];
        var domain = mailbox[(at + 1)..];
        if (System.Text.Encoding.UTF8.GetByteCount(local) > 64 || domain.Length > 255) return false;
        if (mailbox.Any(Unsafe)) return false;
        var quotedLocal = local.Length >= 2 && local[0] == '"' && local[^1] == '"';
        if (!quotedLocal && local.Any(c => c == ' ' || c is '<' or '>' or '(' or ')' or ',' or ';' or ':' or '\\' or '"' or '[' or ']')) return false;
        if (domain[0] == '[') return IsAddressLiteral(domain);
        return domain.Split('.').All(label => label.Length is > 0 and <= 63
            && label.All(c => char.IsLetterOrDigit(c) || c == '-'));
    }

    /// <summary>A character no address may carry: a control or format character, or the mark of undecodable UTF-8.</summary>
    public static bool Unsafe(char c) =>
        char.IsControl(c) || c == '\uFFFD' || char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.Format
            or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator;

    /// <summary>
    /// RFC 5321 §4.1.3: <c>[192.0.2.1]</c> (a dotted quad) or <c>[IPv6:2001:db8::1]</c>. The general form
    /// (<c>[tag:content]</c>) names no standardized tag besides IPv6 and is refused.
    /// </summary>
    public static bool IsAddressLiteral(string literal)
    {
        if (literal.Length < 3 || literal[0] != '[' || literal[^1] != ']') return false;
        var inner = literal[1..^1];
        if (inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
            return System.Net.IPAddress.TryParse(inner[5..], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                && inner[5..].All(c => char.IsAsciiHexDigit(c) || c is ':' or '.');
        var parts = inner.Split('.');
        return parts.Length == 4 && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit) && int.Parse(p) <= 255);
    }
}

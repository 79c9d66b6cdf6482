namespace Mta.Mail.Routing;

/// <summary>Pieces of an RFC 5321 mailbox (<c>local-part@domain</c>) as routing needs them.</summary>
public static class Address
{
    /// <summary>The domain in <see cref="NormalizeDomain"/>'s form; empty when there is none.</summary>
    public static string DomainOf(string address)
    {
        var at = address.LastIndexOf('@');
        return at < 0 ? "" : NormalizeDomain(address[(at + 1)..]);
    }

    /// <summary>
    /// A domain in the one form every decision and every next hop uses: without a trailing dot, ASCII lower case, and an
    /// internationalized domain as its A-labels (IDNA with UTS #46 mapping, as DNS will see it). Unicode case folding
    /// alone would disagree with DNS: it maps the Kelvin sign (U+212A) to <c>k</c> for one comparison and not another,
    /// so a domain a table does not list could still reach the host of one it does. Empty when the name is no valid
    /// domain.
    /// </summary>
    public static string NormalizeDomain(string domain)
    {
        domain = domain.TrimEnd('.');
        if (System.Text.Ascii.IsValid(domain)) return domain.ToLowerInvariant();
        try { return new System.Globalization.IdnMapping().GetAscii(domain).ToLowerInvariant(); }
        catch (ArgumentException) { return ""; }
    }

    /// <summary>
    /// <paramref name="address"/> with a non-ASCII domain replaced by its <see cref="NormalizeDomain"/> form (an ASCII
    /// domain is left as written); null when that domain is not valid.
    /// </summary>
    public static string? WithAsciiDomain(string address)
    {
        var at = address.LastIndexOf('@');
        if (at < 0 || System.Text.Ascii.IsValid(address.AsSpan(at + 1))) return address;
        var domain = NormalizeDomain(address[(at + 1)..]);
        return domain.Length == 0 ? null : address[..(at + 1)] + domain;
    }

    /// <summary>The local part (everything before the last <c>@</c>).</summary>
    public static string LocalPartOf(string address)
    {
        var at = address.LastIndexOf('@');
        return at < 0 ? address : address[..at];
    }
}

namespace Mta.Mail.Routing;

/// <summary>Pieces of an RFC 5321 mailbox (<c>local-part@domain</c>) as routing needs them.</summary>
public static class Address
{
    /// <summary>The domain, lower-cased, without a trailing dot; empty when there is none.</summary>
    public static string DomainOf(string address)
    {
        var at = address.LastIndexOf('@');
        return at < 0 ? "" : address[(at + 1)..].TrimEnd('.').ToLowerInvariant();
    }

    /// <summary>The local part (everything before the last <c>@</c>).</summary>
    public static string LocalPartOf(string address)
    {
        var at = address.LastIndexOf('@');
        return at < 0 ? address : address[..at];
    }
}

namespace Mta.Mail.Routing;

/// <summary>
/// What a local part must be to name a mailbox (a Maildir folder under the data directory, or a user of the mailbox
/// server): one rule, checked at RCPT — so a name that could never be delivered is refused there and never bounced to
/// a sender who may be forged — and again by delivery.
/// </summary>
public static class LocalMailbox
{
    /// <summary>Not empty, at most 64 characters, no leading dot, no path separator, NUL or control character.</summary>
    public static bool IsSafeName(string localPart)
        => localPart.Length is > 0 and <= 64 && localPart[0] != '.' && !localPart.Any(c => c is '/' or '\\' or '\0' || char.IsControl(c));
}

using MimeKit;

namespace Mta.Mail.Feedback;

/// <summary>What a report that came back says about one recipient.</summary>
public enum ReturnKind
{
    /// <summary>A delivery status notification (RFC 3464) with <c>Action: failed</c>: an asynchronous bounce.</summary>
    Bounce,

    /// <summary>A feedback report (ARF, RFC 5965) of any type but <c>not-spam</c>: a complaint.</summary>
    Complaint,
}

/// <summary>One recipient's fate as a returned report tells it.</summary>
/// <param name="Kind">Bounce or complaint.</param>
/// <param name="Recipient">The address the original message went to.</param>
/// <param name="Status">The enhanced status code (RFC 3463) of a bounce.</param>
/// <param name="Detail">The remote reply (a bounce's Diagnostic-Code) or the feedback type.</param>
/// <param name="RemoteMta">The host that refused, as the report names it.</param>
public sealed record ReturnedNotice(ReturnKind Kind, string Recipient, string? Status, string Detail, string? RemoteMta)
{
    /// <summary>The original message's Message-ID, when the report quotes its header.</summary>
    public string? OriginalMessageId { get; init; }
}

/// <summary>
/// Reads a message that came back to a bounce domain: a DSN (<c>multipart/report; report-type=delivery-status</c>, or
/// the RFC 6533 global form) or an ARF report (<c>report-type=feedback-report</c>), parsed by MimeKit. Anything else (an
/// auto-reply, a hand-written note, an old-style text bounce) says nothing here: guessing would suppress addresses on
/// the word of a vacation notice. With a VERP return path the recipient is the one it names, whatever the report's
/// own fields say (a forwarding address, a rewritten one); without one, the report's fields name it. Pure.
/// </summary>
public static class ReturnedReport
{
    /// <summary>The notices in <paramref name="message"/>; <paramref name="verpRecipient"/> is the recipient its return path names.</summary>
    public static IReadOnlyList<ReturnedNotice> Read(MimeMessage message, string? verpRecipient)
    {
        var original = Enclosed(message)?[HeaderId.MessageId]?.Trim();
        if (message.BodyParts.OfType<MessageDeliveryStatus>().FirstOrDefault() is { } status)
            return Bounces(status, verpRecipient).Select(n => n with { OriginalMessageId = original }).ToList();
        if (message.BodyParts.OfType<MessageFeedbackReport>().FirstOrDefault() is { } feedback)
            return Complaint(message, feedback, verpRecipient) is { } complaint ? [complaint with { OriginalMessageId = original }] : [];
        return [];
    }

    private static IReadOnlyList<ReturnedNotice> Bounces(MessageDeliveryStatus status, string? verpRecipient)
    {
        var failed = status.StatusGroups.Skip(1) // the first group is the per-message one
            .Where(g => string.Equals(g["Action"]?.Trim(), "failed", StringComparison.OrdinalIgnoreCase))
            .Select(g => new ReturnedNotice(ReturnKind.Bounce,
                AddressIn(g["Original-Recipient"]) ?? AddressIn(g["Final-Recipient"]) ?? "",
                Value(g["Status"]), Value(g["Diagnostic-Code"]) ?? "", Value(g["Remote-MTA"])))
            .ToList();
        // A VERP'd message had one recipient: the first failure is about it.
        if (verpRecipient is not null) return failed.Take(1).Select(n => n with { Recipient = verpRecipient }).ToList();
        return failed.Where(n => n.Recipient.Contains('@')).ToList();
    }

    private static ReturnedNotice? Complaint(MimeMessage message, MessageFeedbackReport feedback, string? verpRecipient)
    {
        var type = feedback.Fields["Feedback-Type"]?.Trim().ToLowerInvariant() ?? "";
        if (type.Length == 0 || type == "not-spam") return null;
        var recipient = verpRecipient ?? AddressIn(feedback.Fields["Original-Rcpt-To"]) ?? ReportedTo(message);
        if (recipient is null) return null;
        var agent = feedback.Fields["User-Agent"]?.Trim();
        return new ReturnedNotice(ReturnKind.Complaint, recipient, null, $"feedback-type={type}" + (agent is { Length: > 0 } ? $" ({agent})" : ""), null);
    }

    // The complained-of message's To:.
    private static string? ReportedTo(MimeMessage report)
    {
        var to = Enclosed(report)?[HeaderId.To];
        return to is not null && InternetAddressList.TryParse(to, out var list) && list.Mailboxes.FirstOrDefault() is { } mailbox ? mailbox.Address : null;
    }

    // The header of the message a report is about: the enclosed message, or its headers alone (text/rfc822-headers).
    private static HeaderList? Enclosed(MimeMessage report)
        => report.BodyParts.OfType<MessagePart>().FirstOrDefault()?.Message?.Headers
            ?? report.BodyParts.OfType<TextPart>().Where(p => p.ContentType.IsMimeType("text", "rfc822-headers"))
                .Select(p => HeaderList.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(p.Text)))).FirstOrDefault();

    // "rfc822; user@example.net" (RFC 3464's address-type; value), or a bare address.
    private static string? AddressIn(string? field)
    {
        if (Value(field) is not { } value) return null;
        var address = value.IndexOf(';') is var semi and >= 0 ? value[(semi + 1)..].Trim() : value;
        address = address.Trim('<', '>', ' ');
        return address.Contains('@') && !address.Any(char.IsWhiteSpace) ? address : null;
    }

    // A field's value unfolded, without its "smtp;" or "dns;" type prefix.
    private static string? Value(string? field)
    {
        if (string.IsNullOrWhiteSpace(field)) return null;
        var value = string.Join(' ', field.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        foreach (var prefix in (string[])["smtp;", "dns;", "x-postfix;", "x-unix;"])
            if (value.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return value[prefix.Length..].Trim();
        return value;
    }
}

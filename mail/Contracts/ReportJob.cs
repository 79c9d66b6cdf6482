namespace Mta.Mail.Contracts;

/// <summary>
/// Recipients of one message to report on to its sender, put on the <c>bounce</c> queue for the bounce stage: failures
/// (a bounce), and the delay warnings and success notices the sender asked for. A null sender is never reported to
/// (RFC 5321 §4.5.5). The queue keeps Postfix's name; the JSON shape is that of the older <c>BounceJob</c>.
/// </summary>
public sealed record ReportJob
{
    /// <summary>Queue id of the message.</summary>
    public required string MessageId { get; init; }

    /// <summary>Name of the spooled message bytes.</summary>
    public required string BlobName { get; init; }

    /// <summary>Envelope sender the report goes to.</summary>
    public required string Sender { get; init; }

    /// <summary>When the message arrived.</summary>
    public required DateTimeOffset ArrivalTime { get; init; }

    /// <summary>The recipients to report on, and why.</summary>
    public required IReadOnlyList<ReportedRecipient> Recipients { get; init; }

    /// <summary>DSN parameters (RFC 3461) of the message, if any.</summary>
    public DsnRequest? Dsn { get; init; }

    /// <summary>The failed message was itself a postmaster's copy of an undeliverable bounce: log and drop.</summary>
    public bool DoubleBounce { get; init; }

    /// <summary>
    /// The reference this report holds on a spooled message's blob (see <c>SpoolReferences</c>), released when the
    /// report is made; null for inline messages.
    /// </summary>
    public string? Reference { get; init; }

    /// <summary>
    /// The message bytes themselves when the message is small enough to travel in the queue message (the claim
    /// check skipped: no blob is written or read); null when they are in the spool under <c>BlobName</c>.
    /// Deflated in the queue message when large (<see cref="MessageBytesJson"/>).
    /// </summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(MessageBytesJson))]
    public byte[]? Content { get; init; }
}

/// <summary>One recipient to report on, and what became of it.</summary>
/// <param name="Recipient">The envelope recipient.</param>
/// <param name="Reason">The remote reply or local reason, with its enhanced status code.</param>
/// <param name="Action">RFC 3464 action: failed (the default), delayed, delivered or relayed (NOTIFY=SUCCESS).</param>
/// <param name="RemoteMta">The host that answered, when one did.</param>
public sealed record ReportedRecipient(string Recipient, string Reason, DsnAction Action = DsnAction.Failed, string? RemoteMta = null);

namespace Mta.Mail.Contracts;

/// <summary>
/// One unit of delivery work on the <c>delivery</c> queue: a message and the recipients
/// that share one next hop. Cleanup writes it; the delivery stage consumes it.
/// </summary>
public sealed record DeliveryJob
{
    /// <summary>Queue id of the message (the ingress's id).</summary>
    public required string MessageId { get; init; }

    /// <summary>Name of the spooled message bytes in the spool container.</summary>
    public required string BlobName { get; init; }

    /// <summary>
    /// Identifies this job among the message's jobs (<c>{queue id}.{n}</c>); the same on every attempt, and the same when
    /// cleanup runs twice on one message, so a completed job is recognised when its duplicate comes along.
    /// </summary>
    public string JobId { get; init; } = "";

    /// <summary>
    /// The message's header as cleanup left it (blank line included), sent before the stored bytes from
    /// <see cref="BodyOffset"/> on: a spooled body is never rewritten or copied. Null when the stored bytes are sent whole.
    /// </summary>
    public byte[]? Header { get; init; }

    /// <summary>Where the body starts in the stored bytes (the original header is skipped); 0 when they are sent whole.</summary>
    public long BodyOffset { get; init; }

    /// <summary>Envelope sender; empty for the null reverse-path.</summary>
    public required string Sender { get; init; }

    /// <summary>Recipients that go to <see cref="NextHop"/>.</summary>
    public required IReadOnlyList<string> Recipients { get; init; }

    /// <summary>Where these recipients go.</summary>
    public required NextHop NextHop { get; init; }

    /// <summary>When the ingress accepted the message.</summary>
    public required DateTimeOffset ArrivalTime { get; init; }

    /// <summary>DSN parameters (RFC 3461) of the message, if any.</summary>
    public DsnRequest? Dsn { get; init; }

    /// <summary>The message's size in octets as received (for queue listings).</summary>
    public long Size { get; init; }

    /// <summary>How many delivery attempts came before this one (0 for the first).</summary>
    public int Attempt { get; init; }

    /// <summary>When cleanup queued the job: the end of the <c>a</c> part of the log's <c>delays=a/b/c/d</c>.</summary>
    public DateTimeOffset? QueuedTime { get; init; }

    /// <summary>Times this job was put back because its destination was at a traffic-shaping limit (the wait doubles with each).</summary>
    public int Postponements { get; init; }

    /// <summary>The client sent MAIL FROM with SMTPUTF8 (RFC 6531): the next hop must offer SMTPUTF8 if the message needs it.</summary>
    public bool SmtpUtf8 { get; init; }

    /// <summary>This is a postmaster's copy of an undeliverable bounce: if it fails too, it is dropped, never reported.</summary>
    public bool DoubleBounce { get; init; }

    /// <summary>A delay warning (Postfix <c>delay_warning_time</c>) has been sent for these recipients.</summary>
    public bool DelayWarned { get; init; }

    /// <summary>
    /// The earlier attempts of a deferred job, newest last (at most 10): when, where and what the server said. Shown by
    /// <c>mtactl queue show</c>; the full story is in the log.
    /// </summary>
    public IReadOnlyList<string>? History { get; init; }

    /// <summary>
    /// This job is the only thing that needs its spooled message (one job, no reports): it deletes the blob itself when
    /// it is done, with no reference set to keep (three storage requests fewer). Cleared once a report shares the blob.
    /// </summary>
    public bool SoleHolder { get; init; }

    /// <summary>
    /// Cleanup ran more than once for this message (its queue message came back after a worker died), so a twin of
    /// this job may exist: delivery looks for the twin's completion record before delivering.
    /// </summary>
    public bool MaybeDuplicate { get; init; }

    /// <summary>
    /// A nonce set by cleanup for mail that may reach cleanup twice under different runs (HTTP injection retried with
    /// its idempotency key): the first attempt claims the job id with it before delivering, and a twin holding another
    /// nonce is skipped (<see cref="Tracking.CompletionLog.TryClaimAsync"/>). Null for other mail.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Claim { get; init; }

    /// <summary>The message's <c>Message-ID</c> header field, for its events; null when it has none.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? MessageIdField { get; init; }

    /// <summary>The message's tags (name to value: a campaign, the injecting tenant), written with each delivery log line.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? Tags { get; init; }

    /// <summary>
    /// The message bytes themselves when the message is small enough to travel in the queue message (the claim
    /// check skipped: no blob is written or read); null when they are in the spool under <c>BlobName</c>.
    /// Deflated in the queue message when large (<see cref="MessageBytesJson"/>).
    /// </summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(MessageBytesJson))]
    public byte[]? Content { get; init; }
}

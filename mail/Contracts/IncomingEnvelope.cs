namespace Mta.Mail.Contracts;

/// <summary>
/// The envelope the ingress puts on the <c>incoming</c> queue for one accepted message:
/// what SMTP said about the message, and where its bytes are stored (claim check).
/// </summary>
public sealed record IncomingEnvelope
{
    /// <summary>Queue id given to the client in the <c>250</c> reply.</summary>
    public required string Id { get; init; }

    /// <summary>MAIL FROM address; empty for the null reverse-path <c>&lt;&gt;</c>.</summary>
    public required string Sender { get; init; }

    /// <summary>RCPT TO addresses, in the order the client gave them.</summary>
    public required IReadOnlyList<string> Recipients { get; init; }

    /// <summary>The client's IP address as seen by the ingress.</summary>
    public required string ClientAddress { get; init; }

    /// <summary>The HELO/EHLO argument, as given (sanitized by the ingress).</summary>
    public required string Helo { get; init; }

    /// <summary>When the ingress accepted the message.</summary>
    public required DateTimeOffset ArrivalTime { get; init; }

    /// <summary>Message size in octets, after dot-unstuffing.</summary>
    public required long Size { get; init; }

    /// <summary>Name of the blob in the spool container that holds the message bytes.</summary>
    public required string BlobName { get; init; }

    /// <summary>The host name of the ingress that received the message (for Received headers).</summary>
    public string? ReceivedBy { get; init; }

    /// <summary>The protocol keyword for the Received header (RFC 3848): SMTP, ESMTP, ESMTPS, ESMTPA or ESMTPSA.</summary>
    public string Protocol { get; init; } = "ESMTP";

    /// <summary>DSN parameters (RFC 3461) the client gave, if any.</summary>
    public DsnRequest? Dsn { get; init; }

    /// <summary>The client sent MAIL FROM with SMTPUTF8 (RFC 6531): addresses and headers may be UTF-8.</summary>
    public bool SmtpUtf8 { get; init; }

    /// <summary>The TLS session the message came over, e.g. <c>TLSv1.3 with cipher TLS_AES_256_GCM_SHA384</c>; null in plain text.</summary>
    public string? Tls { get; init; }

    /// <summary>
    /// The client was authenticated or in the trusted networks (Postfix <c>local_header_rewrite_clients</c>): cleanup
    /// adds a missing Message-ID and Date and DKIM-signs the message, as it does for submissions only.
    /// </summary>
    public bool TrustedClient { get; init; }

    /// <summary>The SASL login the client used, if it authenticated (DKIM signs only for domains it owns).</summary>
    public string? Login { get; init; }

    /// <summary>
    /// The message bytes themselves when the message is small enough to travel in the queue message (the claim
    /// check skipped: no blob is written or read); null when they are in the spool under <c>BlobName</c>.
    /// Deflated in the queue message when large (<see cref="MessageBytesJson"/>).
    /// </summary>
    [System.Text.Json.Serialization.JsonConverter(typeof(MessageBytesJson))]
    public byte[]? Content { get; init; }

    /// <summary>
    /// Set by an ingress whose own cleanup (before the 250) failed part-way: some delivery jobs may be queued already,
    /// so the cleanup stage marks the ones it queues as possible duplicates, as for a second dequeue.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool MaybeQueued { get; init; }

    /// <summary>
    /// The sender may hand this message in again under the same queue id (HTTP injection retried with its idempotency
    /// key after a failure): cleanup gives each job a claim nonce, so that of two twins only one is delivered.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool DeliverOnce { get; init; }

    /// <summary>Tags the sender gave the message (a campaign, the tenant), carried into its delivery jobs.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? Tags { get; init; }

    /// <summary>
    /// Why the message is held, when a milter quarantined it before the 250 (Postfix's hold queue): cleanup puts its
    /// jobs on the <c>hold</c> queue with this reason instead of delivering them. Null: delivered as usual.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Hold { get; init; }

    /// <summary>
    /// The client asked for VERP return paths (Postfix's <c>XVERP</c>): the delimiters, empty for the configured ones;
    /// null when not asked.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Verp { get; init; }
}

using Mta.Mail.Contracts;

namespace Mta.Mail.Spool;

/// <summary>
/// A message's bytes as a queue message names them, in one of two shapes. Inline: a small message travels inside its
/// queue message, and no blob is written or read. Spooled: the bytes are a blob in the spool (the claim check), written
/// once and never changed; cleanup's new header may go in front of the stored body from <see cref="BodyOffset"/> on, so
/// a spooled body is never rewritten or copied. Queue messages keep their JSON fields (<c>content</c>, <c>blobName</c>,
/// <c>header</c>, <c>bodyOffset</c>); this is how the stages read them.
/// </summary>
public sealed record MessageContent
{
    private MessageContent(string blobName, byte[]? inline, byte[]? header, long bodyOffset)
        => (BlobName, Inline, Header, BodyOffset) = (blobName, inline, header, header is null ? 0 : bodyOffset);

    /// <summary>The blob's name in the spool (named after the queue id even for an inline message, which has none).</summary>
    public string BlobName { get; }

    /// <summary>The bytes themselves for an inline message; null for a spooled one.</summary>
    public byte[]? Inline { get; }

    /// <summary>A header sent in front of the bytes from <see cref="BodyOffset"/> on; null when the bytes are sent whole.</summary>
    public byte[]? Header { get; }

    /// <summary>Where the body starts in the stored bytes, skipping the header <see cref="Header"/> replaces; 0 without one.</summary>
    public long BodyOffset { get; }

    /// <summary>True when the bytes are a blob in the spool, whose lifetime <see cref="SpoolLifetime"/> looks after.</summary>
    public bool IsSpooled => Inline is null;

    /// <summary>An accepted message's bytes, as the ingress stored them.</summary>
    public static MessageContent Of(IncomingEnvelope envelope) => new(envelope.BlobName, envelope.Content, null, 0);

    /// <summary>What a delivery job sends.</summary>
    public static MessageContent Of(DeliveryJob job) => new(job.BlobName, job.Content, job.Header, job.BodyOffset);

    /// <summary>The original a report quotes.</summary>
    public static MessageContent Of(ReportJob report) => new(report.BlobName, report.Content, null, 0);

    /// <summary>Inline bytes, sent whole.</summary>
    public static MessageContent InlineBytes(string blobName, byte[] bytes) => new(blobName, bytes, null, 0);

    /// <summary>A blob, sent whole.</summary>
    public static MessageContent Blob(string blobName) => new(blobName, null, null, 0);

    /// <summary>A blob sent as <paramref name="header"/> followed by its bytes from <paramref name="bodyOffset"/> on.</summary>
    public static MessageContent Blob(string blobName, byte[] header, long bodyOffset) => new(blobName, null, header, bodyOffset);

    /// <summary>The job carrying this content (and nothing of any content it carried before).</summary>
    public DeliveryJob ApplyTo(DeliveryJob job) => job with { BlobName = BlobName, Content = Inline, Header = Header, BodyOffset = BodyOffset };

    /// <summary>
    /// The bytes to send, read once: the header, then the stored bytes from the body offset. A spooled message is
    /// downloaded from where its body starts straight in behind the header, into a pooled buffer the result gives back
    /// when disposed (a new array for each would be a large-object allocation per message).
    /// </summary>
    public async Task<MessageBytes> ReadAsync(MessageSpool spool, CancellationToken ct = default)
    {
        if (Inline is null) return new MessageBytes(await spool.ReadAsync(BlobName, Header, BodyOffset, ct));
        if (Header is null) return new MessageBytes(Inline);
        var body = Inline.AsSpan((int)Math.Min(BodyOffset, Inline.Length));
        var all = new byte[Header.Length + body.Length];
        Header.CopyTo(all, 0);
        body.CopyTo(all.AsSpan(Header.Length));
        return new MessageBytes(all);
    }

    /// <summary>The stored bytes whole (the original as it came, for a report to quote), header or not.</summary>
    public async Task<byte[]> ReadStoredAsync(MessageSpool spool, CancellationToken ct = default)
        => Inline ?? await spool.ReadAsync(BlobName, ct);
}

/// <summary>A message's bytes read for sending; disposing gives a spooled message's pooled buffer back.</summary>
public sealed class MessageBytes : IDisposable
{
    private readonly SpooledBytes? _pooled;

    internal MessageBytes(SpooledBytes pooled) => (_pooled, Memory) = (pooled, pooled.Memory);

    internal MessageBytes(byte[] bytes) => Memory = bytes;

    /// <summary>The bytes; not to be used once disposed.</summary>
    public ReadOnlyMemory<byte> Memory { get; }

    /// <inheritdoc/>
    public void Dispose() => _pooled?.Dispose();
}

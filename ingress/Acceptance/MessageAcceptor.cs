using Microsoft.Extensions.Logging;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;

namespace Mta.Ingress.Acceptance;

/// <summary>Storage could not take the message; the client gets a 4xx and sends it again.</summary>
public sealed class StorageUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Takes responsibility for a message: bytes to the spool, then the envelope to the <c>incoming</c>
/// queue (a small message travels inside the envelope instead). Only when the writes succeeded may the
/// session answer 250.
/// </summary>
public sealed class MessageAcceptor(MessageSpool spool, MailQueues queues, ILogger<MessageAcceptor> log)
{
    /// <summary>
    /// Messages up to this size go inline in the queue message (base64 JSON must stay under 64 KiB, with room
    /// for the envelope); larger ones go to the spool.
    /// </summary>
    public const int InlineLimit = 32 * 1024;

    /// <summary>A place for the next message's bytes, named by a new queue id.</summary>
    public SpoolWriter NewMessage(DateTimeOffset now) => new(spool, QueueId.New(now));

    /// <summary>Stores the message and queues its envelope; throws <see cref="StorageUnavailableException"/> otherwise.</summary>
    public async Task AcceptAsync(IncomingEnvelope envelope, SpoolWriter content, CancellationToken ct)
    {
        // A small message travels inside its queue message: one storage request instead of two.
        if (content.Small(InlineLimit) is { } bytes)
        {
            try
            {
                if (await queues.TrySendAsync(QueueNames.Incoming, envelope with { Content = bytes }, ct) is not null) return;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                throw new StorageUnavailableException($"queue write failed: {e.Message}", e);
            }
        }
        try
        {
            await content.CommitAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw new StorageUnavailableException($"spool write failed: {e.Message}", e);
        }

        try
        {
            await queues.SendAsync(QueueNames.Incoming, envelope, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // Without its envelope the blob is an orphan; the client will send the message again.
            try { await spool.DeleteAsync(envelope.BlobName, CancellationToken.None); }
            catch (Exception cleanup) { log.LogWarning("{QueueId}: orphan blob not removed: {Error}", envelope.Id, cleanup.Message); }
            throw new StorageUnavailableException($"queue write failed: {e.Message}", e);
        }
    }
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Cleanup;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;

namespace Mta.Ingress.Acceptance;

/// <summary>Storage could not take the message; the client gets a 4xx and sends it again.</summary>
public sealed class StorageUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Takes responsibility for a message: a small one is cleaned up here and its delivery jobs queued
/// (<see cref="IngressOptions.CleanupInline"/>); otherwise bytes to the spool, then the envelope to the
/// <c>incoming</c> queue (a small message travels inside the envelope). Only when the writes succeeded may
/// the session answer 250.
/// </summary>
public sealed class MessageAcceptor(MessageSpool spool, MailQueues queues, CleanupStage cleanup, IOptions<IngressOptions> options,
    ILogger<MessageAcceptor> log)
{
    /// <summary>
    /// Messages up to this size go inline in the queue message when they fit: the JSON is base64-encoded for the queue
    /// and must stay under 64 KiB with the envelope, which 48 KiB of mail text does once deflated
    /// (<see cref="MessageBytesJson"/>). Larger ones, and those that do not compress enough, go to the spool.
    /// </summary>
    public const int InlineLimit = 48 * 1024;

    /// <summary>A place for the next message's bytes, named by a new queue id.</summary>
    public SpoolWriter NewMessage(DateTimeOffset now) => new(spool, QueueId.New(now));

    /// <summary>
    /// Queues the message: returns null when the client may have its 250, or the refusal it gets instead (from cleanup
    /// run here: a content check's REJECT, a mail loop). Throws <see cref="StorageUnavailableException"/> when storage
    /// could not take the message.
    /// </summary>
    public async Task<string?> AcceptAsync(IncomingEnvelope envelope, SpoolWriter content, CancellationToken ct)
    {
        // A small message travels inside its queue message: one storage request instead of two.
        if (content.Small(InlineLimit) is { } bytes)
        {
            var whole = envelope with { Content = bytes };
            if (options.Value.CleanupInline)
            {
                try
                {
                    return await cleanup.ProcessBeforeReplyAsync(whole, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    // Some jobs may be queued already; the cleanup stage finishes the message and marks its jobs.
                    log.LogWarning("{QueueId}: cleanup before the reply failed, the message goes to the cleanup stage: {Error}", envelope.Id, e.Message);
                    whole = whole with { MaybeQueued = true };
                }
            }
            try
            {
                if (await queues.TrySendAsync(QueueNames.Incoming, whole, ct) is not null) return null;
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
        return null;
    }
}

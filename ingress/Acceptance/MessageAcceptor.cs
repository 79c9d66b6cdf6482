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
/// Takes responsibility for a message: a large one's bytes to the spool first (a small one travels inside its queue
/// message), then cleanup here and its delivery jobs queued (<see cref="IngressOptions.CleanupInline"/>), or the
/// envelope to the <c>incoming</c> queue for the cleanup stage. Only when the writes succeeded may the session
/// answer 250.
/// </summary>
public sealed class MessageAcceptor(SpoolLifetime spool, MailQueues queues, CleanupStage cleanup, IOptions<IngressOptions> options,
    ILogger<MessageAcceptor> log) : IMessageAcceptor
{
    /// <summary>
    /// Messages up to this size go inline in the queue message when they fit: the queue message is the JSON as it is and
    /// must stay under 64 KiB with the envelope, which 48 KiB of mail does once deflated above 16 KiB
    /// (<see cref="MessageBytesJson"/>). Larger ones, and those that do not fit even so, go to the spool.
    /// </summary>
    public const int InlineLimit = 48 * 1024;

    /// <summary>A place for the next message's bytes, named by a new queue id.</summary>
    public SpoolWriter NewMessage(DateTimeOffset now) => new(spool.Spool, QueueId.New(now));

    /// <inheritdoc />
    public SpoolWriter NewMessage(string queueId) => new(spool.Spool, queueId);

    /// <summary>The reply when the content checks could not finish in time.</summary>
    public const string ContentCheckTimeoutReply = "451 4.7.1 Error: message content could not be checked in time, try again later";

    /// <summary>
    /// Queues the message: returns null when the client may have its 250, or the refusal it gets instead (from cleanup
    /// run here: a content check's REJECT, a mail loop). Throws <see cref="StorageUnavailableException"/> when storage
    /// could not take the message.
    /// </summary>
    public async Task<string?> AcceptAsync(IncomingEnvelope envelope, SpoolWriter content, CancellationToken ct)
    {
        var cleanupHere = options.Value.CleanupInline;
        // A small message travels inside its queue message: one storage request instead of two.
        if (content.Small(InlineLimit) is { } bytes)
        {
            var whole = envelope with { Content = bytes };
            if (cleanupHere)
            {
                var (done, refusal) = await CleanupAsync(whole, default, ct);
                if (done) return refusal;
                (whole, envelope, cleanupHere) = (whole with { MaybeQueued = true }, envelope with { MaybeQueued = true }, false);
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

        // The header is read from what the session still holds, not downloaded again.
        var head = cleanupHere ? HeaderBlock(content.Head) : null;
        try
        {
            await content.CommitAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw new StorageUnavailableException($"spool write failed: {e.Message}", e);
        }
        if (head is not null)
        {
            var (done, refusal) = await CleanupAsync(envelope, head, ct);
            if (done && refusal is not null) await DeleteOrphanAsync(envelope);
            if (done) return refusal;
            envelope = envelope with { MaybeQueued = true };
        }

        try
        {
            await queues.SendAsync(QueueNames.Incoming, envelope, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // Without its envelope the blob is an orphan, unless a cleanup run here queued jobs that read it.
            if (envelope.MaybeQueued) log.LogWarning("{QueueId}: blob kept in the spool: delivery jobs may refer to it", envelope.Id);
            else await DeleteOrphanAsync(envelope);
            throw new StorageUnavailableException($"queue write failed: {e.Message}", e);
        }
        return null;
    }

    /// <summary>
    /// Cleanup here, before the reply: done (with the refusal for the client, if any), or not done because it failed
    /// and the cleanup stage has to finish the message.
    /// </summary>
    private async Task<(bool Done, string? Refusal)> CleanupAsync(IncomingEnvelope envelope, ReadOnlyMemory<byte> head, CancellationToken ct)
    {
        try
        {
            return (true, await cleanup.ProcessBeforeReplyAsync(envelope, head, ct));
        }
        catch (ContentCheckTimeoutException e)
        {
            // Checks run before anything is queued: the client is told to come back, the checks are not skipped.
            log.LogWarning("{QueueId}: deferred: {Error}", envelope.Id, e.Message);
            return (true, ContentCheckTimeoutReply);
        }
        // Running out of memory is no reason to hand the message on: the next stage would parse the same bytes. It
        // propagates, and the client, which has no 250, sends again.
        catch (Exception e) when (e is not OutOfMemoryException && (e is not OperationCanceledException || !ct.IsCancellationRequested))
        {
            // Some jobs may be queued already; the cleanup stage finishes the message and marks its jobs.
            log.LogWarning("{QueueId}: cleanup before the reply failed, the message goes to the cleanup stage: {Error}", envelope.Id, e.Message);
            return (false, null);
        }
    }

    /// <summary>
    /// The header block (blank line included) at the start of <paramref name="head"/>; empty when it does not end there,
    /// and cleanup then reads the header from the spool. Only the header is copied: the rest of a large message would
    /// be a large-object allocation per message.
    /// </summary>
    private static byte[] HeaderBlock(ReadOnlySpan<byte> head)
    {
        var end = head.IndexOf("\r\n\r\n"u8);
        return end < 0 ? [] : head[..(end + 4)].ToArray();
    }

    private async Task DeleteOrphanAsync(IncomingEnvelope envelope)
    {
        try { await spool.DiscardAsync(MessageContent.Of(envelope), CancellationToken.None); }
        catch (Exception e) { log.LogWarning("{QueueId}: orphan blob not removed: {Error}", envelope.Id, e.Message); }
    }
}

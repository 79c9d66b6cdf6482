using Mta.Mail.Contracts;

namespace Mta.Mail.Spool;

/// <summary>
/// The one owner of a spooled message's lifetime: who holds its blob, and when it goes. Inline messages have no blob
/// and need none of this; every method lets them pass.
/// </summary>
/// <remarks>
/// At least once, never a dangling name: a blob must outlive every queue message that names it, and go once none does.
/// Its holders are its open delivery jobs (by job id) and its queued reports (by report reference), kept as a set in
/// <see cref="SpoolReferences"/>. Every holder is added before the queue message that holds it is sent; a job's reports
/// are added in the same write that removes the job (a retry keeps the job's id, and so its hold); and the blob is
/// deleted only after a write emptied the set. A worker dying between any two steps therefore leaves at worst a blob
/// behind, never a queue message naming a deleted blob. The set operations are idempotent, so a queue message that comes
/// back repeats them harmlessly. A blob found gone means it was finished before for a job whose message has no set left,
/// or a report whose reference has left the set (the set goes only with its last holder, the blob after it). The
/// shortcut: a message with one job and no report has no set (three storage requests fewer); that job, the sole holder,
/// deletes the blob when done, and opens a set the moment it shares the blob with a report.
/// </remarks>
public sealed class SpoolLifetime(MessageSpool spool, SpoolReferences references)
{
    /// <summary>The spool the blobs are in.</summary>
    public MessageSpool Spool => spool;

    /// <summary>The reference a report made from one attempt of a job holds on a spooled message.</summary>
    public static string ReportReference(string jobId, int attempt, string kind) => $"{kind}:{jobId}.{attempt}";

    /// <summary>
    /// Hands an accepted message to what cleanup made of it, before any of that is queued: every job and the report (when
    /// there is one) hold the blob. Returns the jobs as they are to be queued (a lone job marked as the sole holder); a
    /// message nothing needs is deleted here.
    /// </summary>
    public async Task<IReadOnlyList<DeliveryJob>> HandOverAsync(string messageId, MessageContent content, IReadOnlyList<DeliveryJob> jobs,
        string? reportReference, CancellationToken ct)
    {
        if (!content.IsSpooled) return jobs;
        var holders = jobs.Select(j => j.JobId).Concat(reportReference is null ? [] : [reportReference]).ToList();
        if (holders.Count == 0)
            await spool.DeleteAsync(content.BlobName, ct);
        else if (holders.Count == 1 && jobs.Count == 1)
            return [jobs[0] with { SoleHolder = true }];
        else
            await references.OpenAsync(messageId, holders, ct);
        return jobs;
    }

    /// <summary>
    /// Stores bytes too large for their queue messages under <paramref name="blobName"/>, once (a second run finds them
    /// written). <paramref name="holders"/>, when given, are registered first: holders of a message that had no blob yet.
    /// </summary>
    public async Task SpoolAsync(string messageId, string blobName, Stream bytes, IEnumerable<string>? holders, CancellationToken ct)
    {
        if (holders is not null) await references.OpenAsync(messageId, holders, ct);
        try { await spool.WriteAsync(blobName, bytes, ct); }
        catch (Azure.RequestFailedException e) when (e.Status == 409) { /* written by an earlier run */ }
    }

    /// <summary>Deletes a message nothing was handed (discarded by a check, or an orphan without its envelope).</summary>
    public Task DiscardAsync(MessageContent content, CancellationToken ct)
        => content.IsSpooled ? spool.DeleteAsync(content.BlobName, ct) : Task.CompletedTask;

    /// <summary>
    /// Settles the holds after a delivery attempt, before its reports and retry are queued: the reports take their
    /// references; the job gives its own up when nothing of it is left to retry. Returns the retry as it is to be
    /// queued, and whether the job was the last holder: then <see cref="DeleteAsync"/> once the rest is queued.
    /// </summary>
    public async Task<(DeliveryJob? Retry, bool Last)> SettleAttemptAsync(DeliveryJob job, IReadOnlyList<ReportJob> reports, DeliveryJob? retry,
        CancellationToken ct)
    {
        if (!MessageContent.Of(job).IsSpooled) return (retry, false);
        var taken = reports.Select(r => r.Reference!).ToList();
        if (!job.SoleHolder)
            return (retry, await references.UpdateAsync(job.MessageId, taken, retry is null ? [job.JobId] : [], ct));
        if (taken.Count == 0) return (retry, retry is null);
        // The sole holder shares the blob from now on: a set, with the reports and (when it goes on) the job itself.
        await references.OpenAsync(job.MessageId, taken.Concat(retry is null ? [] : [job.JobId]), ct);
        return (retry is null ? null : retry with { SoleHolder = false }, false);
    }

    /// <summary>
    /// Gives up one holder's hold (a report made, a job deleted by the operator or from a poison queue); the last holder
    /// deletes the blob.
    /// </summary>
    public async Task ReleaseAsync(string messageId, string blobName, string holder, bool soleHolder, CancellationToken ct)
    {
        if (soleHolder || await references.UpdateAsync(messageId, [], [holder], ct))
            await DeleteAsync(messageId, blobName, ct);
    }

    /// <summary>Gives up a delivery job's hold on its message, if spooled.</summary>
    public Task ReleaseAsync(DeliveryJob job, CancellationToken ct)
        => MessageContent.Of(job).IsSpooled ? ReleaseAsync(job.MessageId, job.BlobName, job.JobId, job.SoleHolder, ct) : Task.CompletedTask;

    /// <summary>Gives up a report's hold on the original it quotes, if spooled.</summary>
    public Task ReleaseAsync(ReportJob report, CancellationToken ct)
        => report.Reference is { } reference ? ReleaseAsync(report.MessageId, report.BlobName, reference, soleHolder: false, ct) : Task.CompletedTask;

    /// <summary>
    /// Lets go of an accepted message whose envelope is dropped (purged from the poison queue): its blob goes, unless
    /// cleanup had handed it to jobs already (there is a set), which then let it go themselves.
    /// </summary>
    public async Task ReleaseUnprocessedAsync(IncomingEnvelope envelope, CancellationToken ct)
    {
        if (MessageContent.Of(envelope).IsSpooled && await references.OpenReferencesAsync(envelope.Id, ct) is null)
            await spool.DeleteAsync(envelope.BlobName, ct);
    }

    /// <summary>Deletes a message's spooled bytes: the original and the copy cleanup made, if it made one.</summary>
    public async Task DeleteAsync(string messageId, string blobName, CancellationToken ct)
    {
        await spool.DeleteAsync(messageId, ct);
        if (blobName != messageId) await spool.DeleteAsync(blobName, ct);
    }

    /// <summary>
    /// Whether a job whose blob is gone was finished before: true when its message has no set left (the blob goes only
    /// with the last holder). False means the blob is missing while still held, which is an error for the caller.
    /// </summary>
    public async Task<bool> JobFinishedBeforeAsync(string messageId, CancellationToken ct)
        => await references.OpenReferencesAsync(messageId, ct) is null;

    /// <summary>Whether a report whose original is gone was made before: true unless its reference is still open.</summary>
    public async Task<bool> ReportMadeBeforeAsync(string messageId, string reference, CancellationToken ct)
        => (await references.OpenReferencesAsync(messageId, ct))?.Contains(reference) != true;
}

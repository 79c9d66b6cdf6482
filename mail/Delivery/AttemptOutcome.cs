using Mta.Mail.Contracts;
using Mta.Mail.Spool;

namespace Mta.Mail.Delivery;

/// <summary>
/// What one delivery attempt comes to, decided from the job, each recipient's result and the time alone (no storage):
/// the reports the sender asked for (RFC 3461: failures, successes where this MTA is the last to know, one delay
/// warning), and the job to try again with the recipients still deferred, and when. <see cref="DeliveryStage"/> then
/// carries it out. Postfix's qmgr/bounce rules live here, where they are unit-tested.
/// </summary>
/// <param name="Expired">The message has been queued past <c>Mta:MaximalQueueLifetimeSeconds</c>: deferred recipients fail.</param>
/// <param name="Reports">Reports to queue for the bounce stage (failures and successes, and delay warnings).</param>
/// <param name="Retry">The job for the recipients to try again, or null when every recipient is final.</param>
/// <param name="RetryDelay">How long <see cref="Retry"/> waits on the deferred queue.</param>
/// <param name="RetryReason">The first deferred recipient's reply, shown by mtactl.</param>
public sealed record AttemptOutcome(bool Expired, IReadOnlyList<ReportJob> Reports, DeliveryJob? Retry, TimeSpan RetryDelay, string? RetryReason)
{
    /// <summary>
    /// Decides the attempt. <paramref name="retryDelay"/> is the backoff for a normal retry and
    /// <paramref name="postponeDelay"/> the wait for recipients only shaping limits held back (both drawn by the caller,
    /// who owns the randomness).
    /// </summary>
    public static AttemptOutcome Decide(DeliveryJob job, IReadOnlyList<RecipientResult> results, DateTimeOffset now, RetryPolicy retries,
        TimeSpan retryDelay, Func<TimeSpan, TimeSpan> postponeDelay)
    {
        var expired = retries.Expired(job.ArrivalTime, now);
        var deferred = results.Where(r => r.Status == RecipientStatus.Deferred).ToList();
        var reports = new List<ReportJob>();
        if (FinalReport(job, results, expired) is { Count: > 0 } final) reports.Add(Report(job, final, "bounce"));
        if (deferred.Count == 0 || expired) return new AttemptOutcome(expired, reports, null, TimeSpan.Zero, null);

        // Postfix's delay_warning_time: once, for recipients still waiting that long.
        var warn = !job.DelayWarned && retries.WarnDelay(job.ArrivalTime, now);
        var delayed = warn ? deferred.Where(r => DsnRequest.Wants(job.Dsn, r.Recipient, DsnAction.Delayed))
            .Select(r => new ReportedRecipient(r.Recipient, r.Detail, DsnAction.Delayed, Remote(r.Relay))).ToList() : [];
        if (delayed.Count > 0) reports.Add(Report(job, delayed, "delay"));

        // Only recipients the shaping limits held back: they come back as soon as a job put back whole would.
        var held = deferred.All(r => r.PostponedFor is not null);
        var attempt = $"{now.UtcDateTime:yyyy-MM-dd HH:mm:ss} relay={deferred[0].Relay}: {deferred[0].Detail}";
        var retry = job with
        {
            Recipients = deferred.Select(r => r.Recipient).ToList(), Attempt = job.Attempt + 1, DelayWarned = job.DelayWarned || warn,
            MaybeDuplicate = false, History = (job.History ?? []).Append(attempt).TakeLast(10).ToList(),
            Postponements = job.Postponements + (held ? 1 : 0),
        };
        var delay = held ? postponeDelay(deferred.Max(r => r.PostponedFor!.Value)) : retryDelay;
        return new AttemptOutcome(expired, reports, retry, delay, deferred[0].Detail);
    }

    /// <summary>
    /// The report for a waiting job the operator returns to its sender (<c>mtactl queue bounce</c>): every recipient
    /// failed with <paramref name="detail"/>, as the sender's NOTIFY asks; null when nobody is to be told.
    /// </summary>
    public static ReportJob? Returned(DeliveryJob job, string detail)
        => FinalReport(job, job.Recipients.Select(r => new RecipientResult(r, RecipientStatus.Bounced, detail, "none")).ToList(), expired: false)
            is { Count: > 0 } failed ? Report(job, failed, "bounce") : null;

    /// <summary>
    /// Reports the sender asked for (RFC 3461 NOTIFY; FAILURE by default): failures (an expired deferral is one), and
    /// successes on NOTIFY=SUCCESS — except where the next hop took NOTIFY and reports success itself; one without DSN
    /// support gets <c>relayed</c> from here (RFC 3461 §6.2.6).
    /// </summary>
    private static List<ReportedRecipient> FinalReport(DeliveryJob job, IReadOnlyList<RecipientResult> results, bool expired)
        => results.Where(r => r.Status == RecipientStatus.Bounced || r.Status == RecipientStatus.Deferred && expired)
            .Where(r => DsnRequest.Wants(job.Dsn, r.Recipient, DsnAction.Failed))
            .Select(r => new ReportedRecipient(r.Recipient, r.Detail, DsnAction.Failed, Remote(r.Relay)))
            .Concat(results.Where(r => r.Status == RecipientStatus.Delivered && !r.NotifyPassedOn && DsnRequest.Wants(job.Dsn, r.Recipient, DsnAction.Delivered))
                .Select(r => new ReportedRecipient(r.Recipient, r.Detail, r.Relayed ? DsnAction.Relayed : DsnAction.Delivered, Remote(r.Relay))))
            .ToList();

    private static ReportJob Report(DeliveryJob job, IReadOnlyList<ReportedRecipient> recipients, string kind)
        => new()
        {
            MessageId = job.MessageId,
            BlobName = job.BlobName,
            Sender = job.Sender,
            ArrivalTime = job.ArrivalTime,
            Recipients = recipients,
            Dsn = job.Dsn,
            DoubleBounce = job.DoubleBounce,
            Content = job.Content,
            Reference = MessageContent.Of(job).IsSpooled ? SpoolLifetime.ReportReference(job.JobId, job.Attempt, kind) : null,
        };

    /// <summary>The remote host's name for a report's Remote-MTA, from a relay such as <c>mx.example[192.0.2.1]:25</c>.</summary>
    internal static string? Remote(string relay)
    {
        if (relay is "none" or "local") return null;
        var bracket = relay.IndexOf('[');
        return bracket > 0 ? relay[..bracket] : relay;
    }
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Classification;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Metrics;
using Mta.Mail.Queues;
using Mta.Mail.Spool;
using Mta.Mail.Tracking;

namespace Mta.Mail.Delivery;

/// <summary>
/// Delivers one job: the message (cleanup's added headers, then the stored bytes) to its next hop.
/// Delivered recipients are done; deferred ones are parked on the <c>deferred</c> queue as a new job
/// that becomes visible after a backoff (so no worker waits, and no replica is scaled for it);
/// bounced ones go to the bounce queue. Nothing is dropped.
/// </summary>
public sealed class DeliveryStage(
    SpoolLifetime spool,
    MailQueues queues,
    SmtpDelivery smtp,
    MaildirDelivery maildir,
    LmtpDelivery lmtp,
    RetryPolicy retries,
    CompletionLog completions,
    WaitingMail waiting,
    PipelineMetrics metrics,
    IOptions<MtaOptions> options,
    TimeProvider clock,
    ILogger<DeliveryStage> log,
    Classification.BounceClassifier classifier,
    Suppression.SuppressionList? suppression = null)
{
    /// <summary>
    /// Processes one message from the <c>delivery</c> queue: a job, or a batch of jobs for one next hop
    /// (<see cref="DeliveryBatch"/>), delivered one after another so that they share the cached connection. A job that
    /// fails in a batch does not make its neighbours retry: it goes back on the queue on its own (marked as a possible
    /// twin, since it may have got as far as delivering), where the trigger's retries and poison queue deal with it alone.
    /// A batch still running after a minute puts its remaining jobs back as one message, so no batch nears the
    /// function timeout however slow its destination is.
    /// </summary>
    public async Task ProcessAsync(IReadOnlyList<DeliveryJob> jobs, CancellationToken ct = default, long dequeueCount = 1)
    {
        if (jobs.Count == 1)
        {
            await ProcessAsync(jobs[0], ct, dequeueCount);
            return;
        }
        var started = clock.GetTimestamp();
        var failed = new List<DeliveryJob>();
        // Completion records are awaited together at the end: the batch's records then share table transactions, and
        // no job waits for the one before it to be recorded. All are written before the batch's queue message goes.
        var records = new List<Task>();
        for (var n = 0; n < jobs.Count; n++)
        {
            if (n > 0 && clock.GetElapsedTime(started) > TimeSpan.FromSeconds(options.Value.DeliveryBatchTimeBudgetSeconds))
            {
                var rest = jobs.Skip(n).Select(j => j with { MaybeDuplicate = true }).Select(QueueJson.Serialize).ToList();
                await queues.SendTextAsync(QueueNames.Delivery, DeliveryBatch.Join(rest), null, ct);
                log.LogInformation("{QueueId}: batch past its time budget after {Seconds:0}s: {Count} job(s) put back", jobs[n].MessageId, clock.GetElapsedTime(started).TotalSeconds, rest.Count);
                break;
            }
            try
            {
                await ProcessAsync(jobs[n], ct, dequeueCount, QueueNames.Delivery, records);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                log.LogWarning("warning: {QueueId}: job {JobId} failed in a batch of {Count}, queued again on its own: {Error}",
                    jobs[n].MessageId, jobs[n].JobId, jobs.Count, e.Message);
                failed.Add(jobs[n]);
            }
        }
        await Task.WhenAll(records);
        foreach (var job in failed)
            await queues.SendAsync(QueueNames.Delivery, job with { MaybeDuplicate = true }, ct);
    }

    /// <summary>
    /// Processes one job from the <c>delivery</c> or <c>deferred</c> queue. <paramref name="dequeueCount"/> above 1
    /// means a worker took this queue message before and may have finished it: the completion record decides.
    /// </summary>
    /// <param name="job">The job.</param>
    /// <param name="ct">Cancelled when the worker stops.</param>
    /// <param name="dequeueCount">How many times the queue message has been received.</param>
    /// <param name="queue">The queue the job came from: a job whose destination is busy goes back there.</param>
    public Task ProcessAsync(DeliveryJob job, CancellationToken ct = default, long dequeueCount = 1, string queue = QueueNames.Delivery)
        => ProcessAsync(job, ct, dequeueCount, queue, records: null);

    // With records given, the job's completion record is added there for the caller to await instead of awaited here.
    private async Task ProcessAsync(DeliveryJob job, CancellationToken ct, long dequeueCount, string queue, List<Task>? records)
    {
        Validate(job);
        var suspect = dequeueCount > 1 || job.MaybeDuplicate;
        if (suspect && await FinishedBeforeAsync(job, dequeueCount, ct)) return;
        if (job.Attempt == 0 && !await completions.TryClaimAsync(job, ct))
        {
            log.LogInformation("{QueueId}: job {JobId} is claimed by a twin (an injection sent again): not delivered twice", job.MessageId, job.JobId);
            metrics.DuplicateSkipped();
            return;
        }

        var times = new AttemptTimes();
        if (await AttemptAsync(job, times, suspect, ct) is not { } attempted) return;
        // Each failure classified once, for the log, the metrics, the events and the suppression list.
        var results = attempted.Select(r => r.Status == RecipientStatus.Delivered ? r : r with { Category = classifier.Classify(r.Detail).Name() }).ToList();
        // Past its lifetime a job is not put back: it goes the way of every expired deferral (a bounce).
        if (results.All(r => r.PostponedFor is not null) && !retries.Expired(job.ArrivalTime, clock.GetUtcNow()))
        {
            await PostponeAsync(job, queue, results.Max(r => r.PostponedFor!.Value), results[0].Detail, ct);
            return;
        }
        times.Done();

        var now = clock.GetUtcNow();
        LogResults(job, results, now, times);
        var outcome = AttemptOutcome.Decide(job, results, now, retries, retries.NextDelay(job.Attempt), wait => PostponeDelay(job, wait));
        await ApplyAsync(job, outcome, now, ct);
        var record = EventsThenRecordAsync(job, results, now, ct);
        if (records is null) await record;
        else records.Add(record);
    }

    // The attempt's events are queued before its completion record: a job whose events failed runs again rather than
    // being recorded without them.
    private async Task EventsThenRecordAsync(DeliveryJob job, IReadOnlyList<RecipientResult> results, DateTimeOffset now, CancellationToken ct)
    {
        if (options.Value.Events)
            await Task.WhenAll(Events.OutcomeEvents.Of(job, results, now, retries.Expired(job.ArrivalTime, now))
                .Select(e => queues.TrySendEventAsync(e, ct)));
        await SuppressAsync(job, results, ct);
        await completions.RecordAsync(job, ct);
    }

    // Hard bounces of the suppressing categories put their address on the tenant's suppression list.
    private Task SuppressAsync(DeliveryJob job, IReadOnlyList<RecipientResult> results, CancellationToken ct)
    {
        if (suppression is not { Enabled: true }) return Task.CompletedTask;
        var tenant = job.Tags?.GetValueOrDefault(Events.OutcomeEvents.TenantTag);
        return Task.WhenAll(results.Where(r => r.Status == RecipientStatus.Bounced)
            .Where(r => r.Category is { } category && suppression.Suppresses(category))
            .Select(r => suppression.AddAsync(tenant, r.Recipient, r.Category!, r.Detail, ct)));
    }

    private static void Validate(DeliveryJob job)
    {
        if (string.IsNullOrEmpty(job.BlobName) || job.Recipients is not { Count: > 0 } || job.NextHop is null)
            throw new InvalidQueueMessageException($"{job.MessageId}: delivery job without blob, recipients or next hop");
        QueueIds.Require("delivery job", job.MessageId, job.BlobName);
        if (job.JobId.Length > 0) QueueIds.Require("delivery job", job.JobId); // jobs of older releases had none
    }

    /// <summary>Whether the completion record says a twin of this job (or this job, received before) finished already.</summary>
    private async Task<bool> FinishedBeforeAsync(DeliveryJob job, long dequeueCount, CancellationToken ct)
    {
        if (!await completions.IsRecordedAsync(job, ct)) return false;
        log.LogInformation("{QueueId}: job {JobId} attempt {Attempt} was finished before (dequeued {Count} times{Twin}): not delivered again",
            job.MessageId, job.JobId, job.Attempt, dequeueCount, job.MaybeDuplicate ? ", cleanup ran twice" : "");
        metrics.DuplicateSkipped();
        return true;
    }

    /// <summary>
    /// One delivery attempt by the job's transport, with each recipient's result; null when the message is gone from
    /// the spool because this (possibly duplicate) job was finished before.
    /// </summary>
    private async Task<IReadOnlyList<RecipientResult>?> AttemptAsync(DeliveryJob job, AttemptTimes times, bool suspect, CancellationToken ct)
    {
        // Every send has been awaited (or its connection is broken and closed) when this goes: nothing reads the buffer then.
        using var message = new JobBytes(job, spool.Spool);
        try
        {
            switch (job.NextHop.Transport)
            {
                case Transport.Local:
                    times.Connected();
                    return await maildir.DeliverAsync(job.MessageId, job.Sender, job.Recipients, await message.LoadAsync(ct), ct);
                case Transport.Lmtp:
                    return await lmtp.DeliverAsync(job, await message.LoadAsync(ct), times, ct);
                default:
                    return await smtp.DeliverAsync(job, message.LoadAsync, times, ct);
            }
        }
        catch (Azure.RequestFailedException e) when (e.Status == 404 && suspect && !message.Loaded)
        {
            // The spool is only cleaned once every job of the message is final, so this one was finished before.
            if (!await spool.JobFinishedBeforeAsync(job.MessageId, ct)) throw;
            log.LogInformation("{QueueId}: job {JobId} was finished before and its message is gone from the spool: not delivered again", job.MessageId, job.JobId);
            return null;
        }
    }

    /// <summary>
    /// The bytes a job sends, read once, when a connection is ready for them: a job put back for a busy destination
    /// has cost no read. Disposing gives a spooled message's buffer back.
    /// </summary>
    private sealed class JobBytes(DeliveryJob job, MessageSpool spool) : IDisposable
    {
        private MessageBytes? _bytes;

        /// <summary>Whether the bytes have been read.</summary>
        public bool Loaded => _bytes is not null;

        /// <summary>The bytes, read on first use.</summary>
        public async Task<ReadOnlyMemory<byte>> LoadAsync(CancellationToken ct)
            => (_bytes ??= await MessageContent.Of(job).ReadAsync(spool, ct)).Memory;

        /// <summary>Gives a spooled message's buffer back to the pool.</summary>
        public void Dispose() => _bytes?.Dispose();
    }

    /// <summary>
    /// Carries out an attempt's outcome. A spooled message's holds are settled first (<see cref="SpoolLifetime"/>: the
    /// reports take theirs before they are queued), and the blob goes last when this job was its last holder. Deferred
    /// mail is invisible on its queue: the waiting index is how an operator sees it.
    /// </summary>
    private async Task ApplyAsync(DeliveryJob job, AttemptOutcome outcome, DateTimeOffset now, CancellationToken ct)
    {
        var (retry, last) = await spool.SettleAttemptAsync(job, outcome.Reports, outcome.Retry, ct);
        foreach (var report in outcome.Reports)
            await queues.SendAsync(QueueNames.Bounce, report, ct);
        if (retry is not null)
        {
            var receipt = await queues.SendAsync(QueueNames.Deferred, retry, ct, delay: outcome.RetryDelay);
            await waiting.PutAsync(WaitingMail.Deferred, retry, receipt, outcome.RetryReason, now + outcome.RetryDelay, ct);
        }
        else if (job.Attempt > 0)
        {
            await waiting.RemoveAsync(WaitingMail.Deferred, job.JobId, ct);
        }
        if (last)
            await spool.DeleteAsync(job.MessageId, job.BlobName, ct);
    }

    /// <summary>
    /// Puts a job back whose destination was at a shaping limit: nothing was tried, so it is the same attempt, on the
    /// queue it came from, due after a wait that doubles each time (1 s up to <c>ShapingMaximalPostponeSeconds</c>) or when
    /// the rate says. It is a new queue message (dequeue count 1) marked as a possible twin, in case this worker dies before
    /// the old one is deleted.
    /// </summary>
    private async Task PostponeAsync(DeliveryJob job, string queue, TimeSpan wait, string reason, CancellationToken ct)
    {
        var delay = PostponeDelay(job, wait);
        var again = job with { Postponements = job.Postponements + 1, MaybeDuplicate = true };
        var receipt = await queues.SendAsync(queue, again, ct, delay: delay);
        if (queue == QueueNames.Deferred)
            await waiting.PutAsync(WaitingMail.Deferred, again, receipt, reason, clock.GetUtcNow() + delay, ct);
        log.LogDebug("{QueueId}: job {JobId} postponed {Delay:0.#}s: {Reason}", job.MessageId, job.JobId, delay.TotalSeconds, reason);
    }

    /// <summary>
    /// A rate says when the job's turn can come: then, give or take half a second. A full destination does not: the wait
    /// doubles with each postponement. Jitter spreads jobs that waited together, so they do not all come back at once.
    /// </summary>
    private TimeSpan PostponeDelay(DeliveryJob job, TimeSpan wait)
    {
        var draw = Random.Shared.NextDouble();
        if (wait > TimeSpan.Zero) return wait + TimeSpan.FromSeconds(0.5 * draw);
        var backoff = Math.Min(Math.Pow(2, Math.Min(job.Postponements, 16)), Math.Max(1, options.Value.ShapingMaximalPostponeSeconds));
        return TimeSpan.FromSeconds(backoff * (1 + 0.5 * draw));
    }

    /// <summary>
    /// Postfix's <c>delays=a/b/c/d</c>, in seconds: a = arrival until cleanup queued the job; b = waiting in
    /// the queues (retry delays included) and reading the spool; c = connection setup (DNS, connect, greeting,
    /// EHLO, TLS); d = the transaction.
    /// </summary>
    internal static string Delays(DeliveryJob job, DateTimeOffset now, AttemptTimes times)
    {
        var queued = job.QueuedTime ?? job.ArrivalTime;
        var a = (queued - job.ArrivalTime).TotalSeconds;
        var total = (now - job.ArrivalTime).TotalSeconds;
        var c = times.Setup.TotalSeconds;
        var d = times.Transfer.TotalSeconds;
        var b = Math.Max(0, total - a - c - d);
        return string.Join('/', new[] { a, b, c, d }.Select(Seconds));
    }

    /// <summary>Seconds as Postfix prints them: two decimals, trailing zeros dropped (0.01, 0.2, 3).</summary>
    private static string Seconds(double s) => Math.Max(0, s).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture);

    private void LogResults(DeliveryJob job, IReadOnlyList<RecipientResult> results, DateTimeOffset now, AttemptTimes times)
    {
        var expired = retries.Expired(job.ArrivalTime, now);
        var delays = Delays(job, now, times);
        foreach (var r in results)
            LogResult(job, r, now, expired, delays, times.ConnectionUse);
    }

    private void LogResult(DeliveryJob job, RecipientResult r, DateTimeOffset now, bool expired, string delays, int connectionUse)
    {
        var status = r.Status switch
        {
            RecipientStatus.Delivered => "sent",
            RecipientStatus.Deferred when expired => "expired",
            RecipientStatus.Deferred => "deferred",
            _ => "bounced",
        };
        // Postfix's line: "ID: to=<rcpt>, relay=..., [conn_use=N, ]delay=..., delays=a/b/c/d, dsn=2.0.0, status=sent (reply)".
        var dsn = EnhancedStatus.For(r.Status == RecipientStatus.Deferred && expired ? RecipientStatus.Bounced : r.Status, r.Detail);
        var category = r.Category;
        metrics.Recipient(status, job.NextHop.Transport.ToString().ToLowerInvariant(), r.Detail, job.ArrivalTime, now, category ?? "none");
        var reuse = connectionUse > 1 ? $"conn_use={connectionUse}, " : "";
        var extra = (category is null ? "" : $"category={category}, ") + Tags(job);
        log.LogInformation("{QueueId}: to=<{Recipient}>, relay={Relay}, {ConnectionUse}delay={Delay}, delays={Delays}, dsn={Dsn}, {Extra}status={Status} ({Detail})",
            job.MessageId, r.Recipient, r.Relay, reuse, Seconds((now - job.ArrivalTime).TotalSeconds), delays, dsn, extra, status, r.Detail);
    }

    // "tags=campaign:dec-2026;tenant:acme, " before the status, as Postfix puts its optional fields before status=.
    private static string Tags(DeliveryJob job)
        => job.Tags is { Count: > 0 } tags ? "tags=" + string.Join(';', tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}:{t.Value}")) + ", " : "";
}

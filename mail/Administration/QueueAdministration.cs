using Azure;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;
using Mta.Mail.Tracking;

namespace Mta.Mail.Administration;

/// <summary>
/// What Postfix's mailq, postqueue and postsuper do, for a queue in Azure Storage: list waiting and queued mail, make
/// deferred mail due now, hold, release and delete it, and look after the poison queues. Deferred and held jobs are
/// found through <see cref="WaitingMail"/> and changed through their queue message's pop receipt, never received, so
/// an operator's look does not count as a delivery attempt.
/// </summary>
public sealed class QueueAdministration(MailQueues queues, WaitingMail waiting, SpoolLifetime spool, TimeProvider clock,
    Microsoft.Extensions.Options.IOptions<Configuration.MtaOptions> options)
{
    /// <summary>How long a job being returned to its sender is kept from the workers, should mtactl stop half-way.</summary>
    private static readonly TimeSpan Claimed = TimeSpan.FromMinutes(5);

    /// <summary>The queues whose visible messages are listed besides the waiting ones (at most 32 each: a peek's limit).</summary>
    public static readonly IReadOnlyList<string> ActiveQueues = [QueueNames.Incoming, QueueNames.Delivery, QueueNames.Bounce];

    /// <summary>Everything that can be seen: waiting jobs from the index, and a peek at the active queues.</summary>
    public async Task<IReadOnlyList<QueueEntry>> ListAsync(CancellationToken ct = default)
    {
        var entries = (await waiting.ListAsync(null, ct)).Select(w => new QueueEntry(
            w.Job.JobId, w.Job.MessageId, w.State, w.Job.ArrivalTime, w.Job.Size > 0 ? w.Job.Size : null, w.Job.Sender, w.Job.Recipients, w.Due, w.Reason, w.Job.Attempt)).ToList();
        foreach (var name in ActiveQueues)
        {
            var queue = queues.Get(name);
            PeekedMessage[] peeked;
            try { peeked = (await queue.PeekMessagesAsync(32, ct)).Value; }
            catch (RequestFailedException e) when (e.Status == 404) { continue; }
            foreach (var m in peeked)
                entries.AddRange(name switch
                {
                    QueueNames.Incoming => [Incoming(QueueJson.Deserialize<IncomingEnvelope>(m.MessageText))],
                    QueueNames.Bounce => [Bounce(QueueJson.Deserialize<ReportJob>(m.MessageText))],
                    _ => DeliveryBatch.Parse(m.MessageText).Select(Active),
                });
        }
        return entries;

        static QueueEntry Incoming(IncomingEnvelope e) => new(e.Id, e.Id, "incoming", e.ArrivalTime, e.Size, e.Sender, e.Recipients, null, null, 0);
        static QueueEntry Active(DeliveryJob j) => new(j.JobId, j.MessageId, "active", j.ArrivalTime, j.Size > 0 ? j.Size : null, j.Sender, j.Recipients, null, null, j.Attempt);
        static QueueEntry Bounce(ReportJob b) => new(b.MessageId, b.MessageId, "bounce", b.ArrivalTime, b.Content?.Length, b.Sender,
            b.Recipients.Select(r => r.Recipient).ToList(), null, b.Recipients.FirstOrDefault()?.Reason, 0);
    }

    /// <summary>The waiting jobs of a queue id, or the one job with that job id.</summary>
    public Task<IReadOnlyList<WaitingJob>> FindAsync(string id, CancellationToken ct = default) => waiting.FindAsync(id, ct);

    /// <summary>Makes deferred jobs due now (Postfix <c>postqueue -f</c>, <c>postqueue -i</c>); null id: all of them.</summary>
    public async Task<AdminResult> RetryAsync(string? id, CancellationToken ct = default)
    {
        var result = new AdminResult();
        foreach (var job in await Select(WaitingMail.Deferred, id, ct))
            await Act(result, job, async () =>
            {
                var updated = await queues.Get(QueueNames.Deferred).UpdateMessageAsync(job.QueueMessageId, job.PopReceipt, visibilityTimeout: TimeSpan.Zero, cancellationToken: ct);
                await waiting.PutAsync(WaitingMail.Deferred, job.Job, SendReceiptFor(job.QueueMessageId, updated.Value.PopReceipt), job.Reason, clock.GetUtcNow(), ct);
            });
        return result;
    }

    /// <summary>Puts deferred jobs on hold (Postfix <c>postsuper -h</c>).</summary>
    public async Task<AdminResult> HoldAsync(string id, CancellationToken ct = default)
    {
        var result = new AdminResult();
        foreach (var job in await Select(WaitingMail.Deferred, id, ct))
            await Act(result, job, async () =>
            {
                await queues.Get(QueueNames.Deferred).DeleteMessageAsync(job.QueueMessageId, job.PopReceipt, ct);
                var receipt = await queues.SendAsync(QueueNames.Hold, job.Job, ct);
                await waiting.PutAsync(WaitingMail.Held, job.Job, receipt, "held by the operator; was: " + job.Reason, null, ct);
                await waiting.RemoveAsync(WaitingMail.Deferred, job.Job.JobId, ct);
            });
        return result;
    }

    /// <summary>Releases held jobs for delivery now (Postfix <c>postsuper -H</c>).</summary>
    public async Task<AdminResult> ReleaseAsync(string id, CancellationToken ct = default)
    {
        var result = new AdminResult();
        foreach (var job in await Select(WaitingMail.Held, id, ct))
            await Act(result, job, async () =>
            {
                await queues.Get(QueueNames.Hold).DeleteMessageAsync(job.QueueMessageId, job.PopReceipt, ct);
                await queues.SendAsync(QueueNames.Delivery, job.Job, ct);
                await waiting.RemoveAsync(WaitingMail.Held, job.Job.JobId, ct);
            });
        return result;
    }

    /// <summary>
    /// Deletes deferred or held jobs (Postfix <c>postsuper -d</c>): no delivery, no bounce. A spooled message's blob goes
    /// when its last holder does. <paramref name="state"/> limits it to one state (<c>--all-deferred</c>).
    /// </summary>
    public async Task<AdminResult> DeleteAsync(string? id, string? state, CancellationToken ct = default)
    {
        var result = new AdminResult();
        foreach (var job in (await waiting.ListAsync(state, ct)).Where(j => id is null || j.Job.MessageId == id || j.Job.JobId == id))
            await Act(result, job, async () =>
            {
                var queue = job.State == WaitingMail.Held ? QueueNames.Hold : QueueNames.Deferred;
                await queues.Get(queue).DeleteMessageAsync(job.QueueMessageId, job.PopReceipt, ct);
                await waiting.RemoveAsync(job.State, job.Job.JobId, ct);
                await spool.ReleaseAsync(job.Job, ct);
                await ReportAsync(job.Job, "deleted", "deleted by the operator", ct);
            });
        return result;
    }

    /// <summary>
    /// Returns deferred or held jobs to their senders: every recipient fails with <c>5.0.0</c> and
    /// <paramref name="reason"/>, reported as the sender's NOTIFY asks, as if the queue lifetime had run out (Postfix has
    /// no such command; its nearest is <c>postsuper -d</c> plus a hand-written note). The job is first made invisible
    /// for a while through its pop receipt, so a worker cannot take it meanwhile; the report is queued before the job
    /// goes, so nothing is lost if mtactl stops half-way (the job then comes back and is tried again).
    /// </summary>
    public async Task<AdminResult> BounceAsync(string id, string reason, CancellationToken ct = default)
    {
        var result = new AdminResult();
        var detail = "5.0.0 " + reason;
        foreach (var job in (await waiting.ListAsync(null, ct)).Where(j => j.Job.MessageId == id || j.Job.JobId == id))
            await Act(result, job, async () =>
            {
                var queue = queues.Get(job.State == WaitingMail.Held ? QueueNames.Hold : QueueNames.Deferred);
                var claimed = await queue.UpdateMessageAsync(job.QueueMessageId, job.PopReceipt, visibilityTimeout: Claimed, cancellationToken: ct);
                var report = Delivery.AttemptOutcome.Returned(job.Job, detail);
                var (_, last) = await spool.SettleAttemptAsync(job.Job, report is null ? [] : [report], null, ct);
                if (report is not null) await queues.SendAsync(QueueNames.Bounce, report, ct);
                await queue.DeleteMessageAsync(job.QueueMessageId, claimed.Value.PopReceipt, ct);
                await waiting.RemoveAsync(job.State, job.Job.JobId, ct);
                if (last) await spool.DeleteAsync(job.Job.MessageId, job.Job.BlobName, ct);
                await ReportAsync(job.Job, "bounced", reason, ct);
            });
        return result;
    }

    /// <summary>With events on, the AdminAction events of what the operator did to <paramref name="job"/>.</summary>
    private async Task ReportAsync(DeliveryJob job, string action, string reason, CancellationToken ct)
    {
        if (!options.Value.Events) return;
        var taken = await Task.WhenAll(Events.OutcomeEvents.AdminAction(job, action, reason, clock.GetUtcNow()).Select(e => queues.TrySendEventAsync(e, ct)));
        if (!taken.All(t => t)) throw new InvalidOperationException("the events queue took no event");
    }

    /// <summary>Messages in a poison queue (a peek: the first 32) and how many there are.</summary>
    public async Task<(IReadOnlyList<PeekedMessage> First, int Count)> PoisonAsync(string queue, CancellationToken ct = default)
    {
        var client = queues.GetPoison(queue);
        try
        {
            var count = (await client.GetPropertiesAsync(ct)).Value.ApproximateMessagesCount;
            return ((await client.PeekMessagesAsync(32, ct)).Value, count);
        }
        catch (RequestFailedException e) when (e.Status == 404) { return ([], 0); }
    }

    /// <summary>Moves every message of a poison queue back to its queue, to be tried again; returns how many.</summary>
    public Task<int> RequeuePoisonAsync(string queue, CancellationToken ct = default)
        => DrainPoisonAsync(queue, m => queues.Get(queue).SendMessageAsync(m.MessageText, null, TimeSpan.FromSeconds(-1), ct), ct);

    /// <summary>
    /// Empties a poison queue (Postfix <c>postsuper -d</c> on what cannot be processed) and releases what each message
    /// held: a delivery or bounce job gives up its reference to a spooled message, whose blob goes with the last one; an
    /// incoming message's blob goes unless cleanup had already handed it to jobs. Returns how many messages it held.
    /// </summary>
    public Task<int> PurgePoisonAsync(string queue, CancellationToken ct = default)
        => DrainPoisonAsync(queue, m => ReleaseAsync(queue, m.MessageText, ct), ct);

    /// <summary>Takes every message off a poison queue, each after <paramref name="act"/> has done with it; returns how many.</summary>
    private async Task<int> DrainPoisonAsync(string queue, Func<QueueMessage, Task> act, CancellationToken ct)
    {
        var poison = queues.GetPoison(queue);
        var done = 0;
        while (true)
        {
            QueueMessage[] batch;
            try { batch = (await poison.ReceiveMessagesAsync(32, TimeSpan.FromMinutes(1), ct)).Value; }
            catch (RequestFailedException e) when (e.Status == 404) { return done; }
            if (batch.Length == 0) return done;
            foreach (var m in batch)
            {
                await act(m);
                await poison.DeleteMessageAsync(m.MessageId, m.PopReceipt, ct);
                done++;
            }
        }
    }

    /// <summary>Lets go of the spooled message a poison queue message held; a text that is no message of its queue held nothing.</summary>
    private async Task ReleaseAsync(string queue, string text, CancellationToken ct)
    {
        try
        {
            switch (queue)
            {
                case QueueNames.Incoming:
                    var envelope = QueueJson.Deserialize<IncomingEnvelope>(text);
                    if (QueueIds.IsSafe(envelope.Id) && QueueIds.IsSafe(envelope.BlobName))
                        await spool.ReleaseUnprocessedAsync(envelope, ct);
                    break;
                case QueueNames.Bounce:
                    var report = QueueJson.Deserialize<ReportJob>(text);
                    if (QueueIds.IsSafe(report.MessageId) && QueueIds.IsSafe(report.BlobName) && (report.Reference is null || QueueIds.IsSafe(report.Reference)))
                        await spool.ReleaseAsync(report, ct);
                    break;
                default:
                    foreach (var job in DeliveryBatch.Parse(text).Where(j => QueueIds.IsSafe(j.MessageId) && (j.JobId.Length == 0 || QueueIds.IsSafe(j.JobId)) && QueueIds.IsSafe(j.BlobName)))
                    {
                        // A waiting job listed by mtactl that no longer exists would be a ghost.
                        if (queue is QueueNames.Deferred or QueueNames.Hold)
                            await waiting.RemoveAsync(queue == QueueNames.Hold ? WaitingMail.Held : WaitingMail.Deferred, job.JobId, ct);
                        await spool.ReleaseAsync(job, ct);
                    }
                    break;
            }
        }
        catch (InvalidQueueMessageException)
        {
            // Not a message of this queue (it was poisoned for that): it names nothing that could be released.
        }
    }

    private async Task<IReadOnlyList<WaitingJob>> Select(string state, string? id, CancellationToken ct)
        => (await waiting.ListAsync(state, ct)).Where(j => id is null || j.Job.MessageId == id || j.Job.JobId == id).ToList();

    private static async Task Act(AdminResult result, WaitingJob job, Func<Task> action)
    {
        try
        {
            await action();
            result.Done.Add(job.Job.JobId);
        }
        catch (RequestFailedException e) when (e.Status is 404 or 400)
        {
            // The pop receipt no longer matches: a worker has the job right now (it was due), or it is gone.
            result.Busy.Add(job.Job.JobId);
        }
    }

    private static SendReceipt SendReceiptFor(string messageId, string popReceipt)
        => QueuesModelFactory.SendReceipt(messageId, DateTimeOffset.UtcNow, DateTimeOffset.MaxValue, popReceipt, DateTimeOffset.UtcNow);
}

/// <summary>One line of a queue listing.</summary>
/// <param name="Id">Job id (or queue id for incoming and bounce entries).</param>
/// <param name="QueueId">The message's queue id.</param>
/// <param name="State">incoming, active, deferred, hold or bounce.</param>
/// <param name="ArrivalTime">When the message arrived.</param>
/// <param name="Size">Size in bytes when known.</param>
/// <param name="Sender">Envelope sender.</param>
/// <param name="Recipients">Recipients of this job.</param>
/// <param name="Due">When a deferred job is tried again.</param>
/// <param name="Reason">Why it waits.</param>
/// <param name="Attempt">Delivery attempts so far.</param>
public sealed record QueueEntry(string Id, string QueueId, string State, DateTimeOffset ArrivalTime, long? Size, string Sender,
    IReadOnlyList<string> Recipients, DateTimeOffset? Due, string? Reason, int Attempt);

/// <summary>What an operation did: jobs done, and jobs a worker had at that moment (try again).</summary>
public sealed class AdminResult
{
    /// <summary>Job ids acted on.</summary>
    public List<string> Done { get; } = [];

    /// <summary>Job ids whose queue message was being worked on (or gone): not changed.</summary>
    public List<string> Busy { get; } = [];
}

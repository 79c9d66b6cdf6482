using Mta.Mail.Classification;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;

namespace Mta.Mail.Events;

/// <summary>The events of a message's acceptance and of its delivery attempts, one per recipient. Pure.</summary>
public static class OutcomeEvents
{
    /// <summary>
    /// AsyncBounce or Complaint: what a report that came back to a bounce domain says of <paramref name="notice"/>'s
    /// recipient. The queue id is the report's own; the sender is the return path's owner.
    /// </summary>
    public static MailEvent Returned(IncomingEnvelope report, string type, string owner, Feedback.ReturnedNotice notice, string category,
        string? tenant, DateTimeOffset now) => OfEnvelope(report, type, notice.Recipient, owner, now) with
    {
        MessageId = notice.OriginalMessageId,
        RemoteHost = notice.RemoteMta,
        Reply = notice.Detail,
        EnhancedStatus = notice.Status,
        Category = category,
        Tags = tenant is null ? null : new Dictionary<string, string> { [TenantTag] = tenant },
    };

    /// <summary>The tag that names the tenant whose webhooks and suppression list a message's outcomes go to.</summary>
    public const string TenantTag = "tenant";

    /// <summary>Suppressed: a recipient cleanup dropped because its address is on the tenant's suppression list.</summary>
    public static MailEvent Suppressed(IncomingEnvelope envelope, string sender, string recipient, Suppression.SuppressionEntry entry, DateTimeOffset now)
        => OfEnvelope(envelope, MailEventTypes.Suppressed, recipient, sender, now) with { Reply = entry.Reason, Category = entry.Category };

    /// <summary>
    /// AdminAction: one per recipient of a waiting job the operator deleted (<paramref name="action"/> <c>deleted</c>)
    /// or returned to its sender (<c>bounced</c>). The id is the job's and its attempt's: doing it again is the same event.
    /// </summary>
    public static IReadOnlyList<MailEvent> AdminAction(DeliveryJob job, string action, string reason, DateTimeOffset now)
        => job.Recipients.Select(recipient => OfJob(job, MailEventTypes.AdminAction, recipient, job.JobId, job.Attempt, now) with
        {
            Reply = $"{action}: {reason}",
            EnhancedStatus = action == "bounced" ? "5.0.0" : null,
            Category = action == "bounced" ? BounceCategory.Other.Name() : null,
        }).ToList();

    /// <summary>
    /// The events for <paramref name="results"/> of <paramref name="job"/>'s attempt, finished at <paramref name="now"/>;
    /// the first attempt's also bring the job's Reception events. Those are stamped with the time the job was queued
    /// (the message's 250 or 202) and travel with the first outcome, so reporting the acceptance costs no queue write of
    /// its own. A job's queue message that comes back makes the same ids again.
    /// </summary>
    public static IReadOnlyList<MailEvent> Of(DeliveryJob job, IReadOnlyList<RecipientResult> results, DateTimeOffset now, bool expired)
        => (job.Attempt == 0 ? Reception(job) : []).Concat(results.Select(r => Of(job, r, now, expired))).ToList();

    /// <summary>Reception: one per recipient of a job cleanup queued for an accepted message.</summary>
    public static IEnumerable<MailEvent> Reception(DeliveryJob job)
        => job.Recipients.Select(recipient => OfJob(job, MailEventTypes.Reception, recipient, job.MessageId, 0, job.QueuedTime ?? job.ArrivalTime));

    private static MailEvent Of(DeliveryJob job, RecipientResult r, DateTimeOffset now, bool expired)
    {
        var type = r.Status switch
        {
            RecipientStatus.Delivered => MailEventTypes.Delivery,
            RecipientStatus.Deferred when expired => MailEventTypes.Expiration,
            RecipientStatus.Deferred => MailEventTypes.TransientFailure,
            _ => MailEventTypes.Bounce,
        };
        var named = job.JobId.Length > 0 ? job.JobId : job.MessageId;
        return OfJob(job, type, r.Recipient, named, job.Attempt, now) with
        {
            Attempt = job.Attempt + 1,
            RemoteHost = r.Relay,
            Reply = r.Detail,
            EnhancedStatus = EnhancedStatus.For(r.Status == RecipientStatus.Deferred && expired ? RecipientStatus.Bounced : r.Status, r.Detail),
            Category = r.Category,
        };
    }

    // What every event of a job says: the message, the job, the recipient; named by (idKey, idAttempt, recipient, type).
    private static MailEvent OfJob(DeliveryJob job, string type, string recipient, string idKey, int idAttempt, DateTimeOffset at) => new()
    {
        Id = MailEvent.IdFor(idKey, idAttempt, recipient, type),
        Type = type,
        Timestamp = at,
        QueueId = job.MessageId,
        MessageId = job.MessageIdField,
        JobId = job.JobId.Length > 0 ? job.JobId : null,
        Recipient = recipient,
        Sender = job.Sender,
        NextHop = job.NextHop.ToString(),
        Attempt = idAttempt,
        Arrival = job.ArrivalTime,
        Size = job.Size,
        Tags = job.Tags,
    };

    // What every event of an accepted message without a job says (cleanup's, a returned report's).
    private static MailEvent OfEnvelope(IncomingEnvelope envelope, string type, string recipient, string sender, DateTimeOffset at) => new()
    {
        Id = MailEvent.IdFor(envelope.Id, 0, recipient, type),
        Type = type,
        Timestamp = at,
        QueueId = envelope.Id,
        Recipient = recipient,
        Sender = sender,
        Arrival = envelope.ArrivalTime,
        Size = envelope.Size,
        Tags = envelope.Tags,
    };
}

using Mta.Mail.Classification;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;

namespace Mta.Mail.Events;

/// <summary>The events of a message's acceptance and of its delivery attempts, one per recipient. Pure.</summary>
public static class OutcomeEvents
{
    /// <summary>
    /// Reception: one per recipient of the jobs cleanup queued for an accepted message (the 250, or an injection's 202,
    /// follows them). A second cleanup run for the message makes the same ids.
    /// </summary>
    public static IReadOnlyList<MailEvent> Reception(IncomingEnvelope envelope, string sender, IReadOnlyList<DeliveryJob> jobs, DateTimeOffset now)
        => jobs.SelectMany(job => job.Recipients.Select(recipient => new MailEvent
        {
            Id = MailEvent.IdFor(envelope.Id, 0, recipient, MailEventTypes.Reception),
            Type = MailEventTypes.Reception,
            Timestamp = now,
            QueueId = envelope.Id,
            JobId = job.JobId,
            Recipient = recipient,
            Sender = sender,
            NextHop = job.NextHop.ToString(),
            Arrival = envelope.ArrivalTime,
            Size = envelope.Size,
            Tags = envelope.Tags,
        })).ToList();

    /// <summary>The tag that names the tenant whose webhooks and suppression list a message's outcomes go to.</summary>
    public const string TenantTag = "tenant";

    /// <summary>Suppressed: a recipient cleanup dropped because its address is on the tenant's suppression list.</summary>
    public static MailEvent Suppressed(IncomingEnvelope envelope, string sender, string recipient, Suppression.SuppressionEntry entry, DateTimeOffset now) => new()
    {
        Id = MailEvent.IdFor(envelope.Id, 0, recipient, MailEventTypes.Suppressed),
        Type = MailEventTypes.Suppressed,
        Timestamp = now,
        QueueId = envelope.Id,
        Recipient = recipient,
        Sender = sender,
        Reply = entry.Reason,
        Category = entry.Category,
        Arrival = envelope.ArrivalTime,
        Size = envelope.Size,
        Tags = envelope.Tags,
    };

    /// <summary>The events for <paramref name="results"/> of <paramref name="job"/>'s attempt, finished at <paramref name="now"/>.</summary>
    public static IReadOnlyList<MailEvent> Of(DeliveryJob job, IReadOnlyList<RecipientResult> results, DateTimeOffset now, bool expired)
        => results.Select(r => Of(job, r, now, expired)).ToList();

    private static MailEvent Of(DeliveryJob job, RecipientResult r, DateTimeOffset now, bool expired)
    {
        var type = r.Status switch
        {
            RecipientStatus.Delivered => MailEventTypes.Delivery,
            RecipientStatus.Deferred when expired => MailEventTypes.Expiration,
            RecipientStatus.Deferred => MailEventTypes.TransientFailure,
            _ => MailEventTypes.Bounce,
        };
        return new MailEvent
        {
            Id = MailEvent.IdFor(job.JobId.Length > 0 ? job.JobId : job.MessageId, job.Attempt, r.Recipient, type),
            Type = type,
            Timestamp = now,
            QueueId = job.MessageId,
            JobId = job.JobId.Length > 0 ? job.JobId : null,
            Recipient = r.Recipient,
            Sender = job.Sender,
            NextHop = job.NextHop.ToString(),
            RemoteHost = r.Relay,
            Reply = r.Detail,
            EnhancedStatus = EnhancedStatus.For(r.Status == RecipientStatus.Deferred && expired ? RecipientStatus.Bounced : r.Status, r.Detail),
            Category = r.Category,
            Attempt = job.Attempt + 1,
            Arrival = job.ArrivalTime,
            Size = job.Size,
            Tags = job.Tags,
        };
    }
}

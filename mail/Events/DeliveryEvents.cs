using Mta.Mail.Classification;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;

namespace Mta.Mail.Events;

/// <summary>The events of one delivery attempt: one per recipient, its type from the result. Pure.</summary>
public static class DeliveryEvents
{
    /// <summary>The events for <paramref name="results"/> of <paramref name="job"/>'s attempt, finished at <paramref name="now"/>.</summary>
    public static IReadOnlyList<MailEvent> Of(DeliveryJob job, IReadOnlyList<RecipientResult> results, DateTimeOffset now, bool expired,
        BounceClassifier classifier)
        => results.Select(r => Of(job, r, now, expired, classifier)).ToList();

    private static MailEvent Of(DeliveryJob job, RecipientResult r, DateTimeOffset now, bool expired, BounceClassifier classifier)
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
            Category = r.Status == RecipientStatus.Delivered ? null : classifier.Classify(r.Detail).Name(),
            Attempt = job.Attempt + 1,
            Arrival = job.ArrivalTime,
            Size = job.Size,
            Tags = job.Tags,
        };
    }
}

namespace Mta.Mail.Queues;

/// <summary>The queues between stages. Each stage is triggered by, and scaled on, its own queue.</summary>
public static class QueueNames
{
    /// <summary>Envelopes of accepted messages, from the ingress to cleanup.</summary>
    public const string Incoming = "incoming";

    /// <summary>Delivery jobs (one per next hop), from cleanup to delivery.</summary>
    public const string Delivery = "delivery";

    /// <summary>
    /// Delivery jobs waiting for a retry, parked with a visibility delay until they are due.
    /// Kept apart from <see cref="Delivery"/> so waiting mail never counts as work to scale for:
    /// KEDA scales the retry stage on this queue's <em>visible</em> (due) messages only.
    /// </summary>
    public const string Deferred = "deferred";

    /// <summary>Recipients that failed permanently, from delivery to the bounce stage.</summary>
    public const string Bounce = "bounce";

    /// <summary>
    /// Delivery jobs of messages a content check put on hold (Postfix's hold queue). No stage reads it: an operator
    /// releases a job by moving it to <see cref="Delivery"/>, or deletes it.
    /// </summary>
    public const string Hold = "hold";

    /// <summary>
    /// Recipients' outcomes (<see cref="Events.MailEvent"/>), grouped, for the webhook stage to post to the sender's
    /// endpoints; written only when <c>Mta:Events</c> is on. Its poison queue holds what an endpoint that stayed down
    /// did not take (parked, nothing lost: <c>mtactl poison requeue events</c>).
    /// </summary>
    public const string Events = "events";

    /// <summary>Every queue the system writes to.</summary>
    public static readonly IReadOnlyList<string> All = [Incoming, Delivery, Deferred, Bounce, Hold, Events];
}

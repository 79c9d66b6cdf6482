namespace Mta.Mail.Delivery;

/// <summary>What happened to one recipient in one delivery attempt.</summary>
public enum RecipientStatus
{
    /// <summary>The next hop took responsibility (2xx, or written to the Maildir).</summary>
    Delivered,

    /// <summary>Temporary failure (4xx, no connection, DNS trouble): try again later.</summary>
    Deferred,

    /// <summary>Permanent failure (5xx, no such domain): report to the sender.</summary>
    Bounced,
}

/// <summary>The outcome for one recipient, with the reply or reason in Postfix's log terms.</summary>
/// <param name="Recipient">The envelope recipient.</param>
/// <param name="Status">Delivered, deferred or bounced.</param>
/// <param name="Detail">The remote reply or local reason, e.g. <c>250 2.0.0 Ok</c> or <c>Host not found</c>.</param>
/// <param name="Relay">Where it went, e.g. <c>mx1.example.test[127.0.0.1]:25</c> or <c>local</c>.</param>
/// <param name="Relayed">
/// Handed to another MTA rather than delivered into a mailbox. With <paramref name="NotifyPassedOn"/> the next hop
/// got the DSN request and reports success itself; without it, success is reported here as <c>relayed</c> (RFC 3461 §6.2.6).
/// </param>
/// <param name="NotifyPassedOn">The next hop offered DSN and was given NOTIFY (and ORCPT, ENVID, RET).</param>
public sealed record RecipientResult(string Recipient, RecipientStatus Status, string Detail, string Relay, bool Relayed = false, bool NotifyPassedOn = false)
{
    /// <summary>
    /// Not tried: the destination was at a traffic-shaping limit. The recipient waits this long (zero: as long as the job's
    /// postponements say) and is tried again, without it counting as a failed attempt. <see cref="Status"/> stays <see cref="RecipientStatus.Deferred"/>, so code that
    /// ignores this treats it as a deferral.
    /// </summary>
    public TimeSpan? PostponedFor { get; init; }

    /// <summary>The bounce classification of a failure (<c>invalid_recipient</c>, …), set once by the stage; null for a delivery.</summary>
    public string? Category { get; init; }
}

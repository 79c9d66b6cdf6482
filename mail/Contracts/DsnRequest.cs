namespace Mta.Mail.Contracts;

/// <summary>
/// What the client asked for in delivery status notifications (RFC 3461): RET and ENVID from MAIL,
/// NOTIFY and ORCPT per recipient from RCPT. Carried from the ingress to the bounce stage.
/// </summary>
public sealed record DsnRequest
{
    /// <summary><c>FULL</c> or <c>HDRS</c>: return the whole message or its header; null: the MTA's choice.</summary>
    public string? Ret { get; init; }

    /// <summary>The client's envelope id (decoded from xtext), returned as Original-Envelope-Id.</summary>
    public string? EnvelopeId { get; init; }

    /// <summary>Per recipient address: NOTIFY and ORCPT, for the recipients that gave them.</summary>
    public IReadOnlyDictionary<string, RecipientDsn> Recipients { get; init; } = new Dictionary<string, RecipientDsn>();

    /// <summary>Whether a report of <paramref name="action"/> is wanted for a recipient.</summary>
    public static bool Wants(DsnRequest? dsn, string recipient, DsnAction action)
    {
        var notify = dsn?.Recipients.GetValueOrDefault(recipient)?.Notify;
        // RFC 3461 §4.1: the default is FAILURE or FAILURE,DELAY; like Postfix, delay warnings go out by
        // default when they are switched on (delay_warning_time).
        if (notify is null) return action is DsnAction.Failed or DsnAction.Delayed;
        return notify.Split(',').Contains(action.NotifyKeyword());
    }
}

/// <summary>One recipient's DSN parameters.</summary>
/// <param name="Notify"><c>NEVER</c>, or a comma list of <c>SUCCESS</c>, <c>FAILURE</c>, <c>DELAY</c>; null when not given.</param>
/// <param name="OriginalRecipient">ORCPT as <c>type;address</c> (decoded), returned as Original-Recipient.</param>
public sealed record RecipientDsn(string? Notify, string? OriginalRecipient);

namespace Mta.Ingress.Milter;

/// <summary>What a milter's answer means for the SMTP command or message it was about.</summary>
public enum MilterDecision
{
    /// <summary>Refuse with <see cref="MilterVerdict.Reply"/> (4xx or 5xx).</summary>
    Refuse,
    /// <summary>Accept the message and drop it.</summary>
    Discard,
    /// <summary>Accept the message onto the hold queue, <see cref="MilterVerdict.Reply"/> saying why.</summary>
    Hold,
    /// <summary>Answer <see cref="MilterVerdict.Reply"/> (421) and close the session.</summary>
    Shutdown,
}

/// <summary>A milter's decision about an event; an event that may go on has none (null).</summary>
/// <param name="Decision">What the session does.</param>
/// <param name="Reply">The SMTP reply for a refusal or shutdown; the reason for a hold.</param>
/// <param name="Milter">Which milter decided, for the log line.</param>
public sealed record MilterVerdict(MilterDecision Decision, string Reply, string Milter)
{
    /// <summary>libmilter's reply to SMFIR_REJECT, as Postfix words it.</summary>
    public const string RejectReply = "550 5.7.1 Command rejected";

    /// <summary>libmilter's reply to SMFIR_TEMPFAIL, as Postfix words it.</summary>
    public const string TempfailReply = "451 4.7.1 Service unavailable - try again later";

    /// <summary>Postfix's reply to SMFIR_SHUTDOWN.</summary>
    public const string ShutdownReply = "421 4.7.0 Server closing connection";

    /// <summary>The verdict a failed milter leaves for every later event (Postfix's milter8_comm_error), or null for <c>accept</c>.</summary>
    public static MilterVerdict? ForFailure(MilterDefaultAction action, string milter) => action switch
    {
        MilterDefaultAction.Accept => null,
        MilterDefaultAction.Reject => new(MilterDecision.Refuse, "550 5.5.0 Service unavailable", milter),
        MilterDefaultAction.Quarantine => new(MilterDecision.Hold, "default_action", milter),
        _ => new(MilterDecision.Refuse, TempfailReply, milter),
    };

    /// <summary>The label for logs and metrics: reject, tempfail, discard, hold, shutdown.</summary>
    public string Kind => Decision switch
    {
        MilterDecision.Refuse => Reply.StartsWith('4') ? "tempfail" : "reject",
        MilterDecision.Discard => "discard",
        MilterDecision.Hold => "hold",
        _ => "shutdown",
    };
}

using System.Text.Json.Serialization;

namespace Mta.Mail.Contracts;

/// <summary>
/// The RFC 3464 §2.3.3 Action of one recipient in a report. In queue messages and in the report itself it is the
/// lowercase keyword (<c>failed</c>, <c>delayed</c>, ...), so queue messages of earlier releases still parse.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<DsnAction>))]
public enum DsnAction
{
    /// <summary>Permanently undeliverable (the default: a report is a bounce unless it says otherwise).</summary>
    [JsonStringEnumMemberName("failed")] Failed,

    /// <summary>Still being retried: a delay warning.</summary>
    [JsonStringEnumMemberName("delayed")] Delayed,

    /// <summary>Delivered into a mailbox here (NOTIFY=SUCCESS).</summary>
    [JsonStringEnumMemberName("delivered")] Delivered,

    /// <summary>Handed to a next hop that cannot pass NOTIFY on: success as far as this MTA can tell (RFC 3461 §6.2.6).</summary>
    [JsonStringEnumMemberName("relayed")] Relayed,
}

/// <summary>The keywords of <see cref="DsnAction"/> and what they mean for a report.</summary>
public static class DsnActions
{
    /// <summary>The RFC 3464 keyword, as it appears in a report's Action field and in queue messages.</summary>
    public static string Keyword(this DsnAction action) => action switch
    {
        DsnAction.Failed => "failed",
        DsnAction.Delayed => "delayed",
        DsnAction.Delivered => "delivered",
        DsnAction.Relayed => "relayed",
        _ => throw new ArgumentOutOfRangeException(nameof(action), action, null),
    };

    /// <summary>True for a success report: delivered here, or relayed to a next hop that reports no further.</summary>
    public static bool IsSuccess(this DsnAction action) => action is DsnAction.Delivered or DsnAction.Relayed;

    /// <summary>The RFC 3461 NOTIFY keyword that asks for reports of <paramref name="action"/>.</summary>
    public static string NotifyKeyword(this DsnAction action) => action switch
    {
        DsnAction.Failed => "FAILURE",
        DsnAction.Delayed => "DELAY",
        _ => "SUCCESS",
    };
}

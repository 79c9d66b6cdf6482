using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;

namespace Mta.Mail.Events;

/// <summary>What happened to a recipient (issue #23's event types; more come with the stages that make them).</summary>
public static class MailEventTypes
{
    /// <summary>Accepted with a 250 (or an injection's 202).</summary>
    public const string Reception = "Reception";

    /// <summary>The next hop took the message.</summary>
    public const string Delivery = "Delivery";

    /// <summary>A deferral: tried again later.</summary>
    public const string TransientFailure = "TransientFailure";

    /// <summary>A permanent failure, with the remote reply.</summary>
    public const string Bounce = "Bounce";

    /// <summary>The queue lifetime ran out.</summary>
    public const string Expiration = "Expiration";

    /// <summary>Not sent: the address is on the suppression list.</summary>
    public const string Suppressed = "Suppressed";

    /// <summary>Deleted or returned to the sender by the operator (<c>mtactl queue delete</c> / <c>bounce</c>).</summary>
    public const string AdminAction = "AdminAction";

    /// <summary>A bounce (a DSN, RFC 3464, or another non-delivery report) that came back after the next hop took the message.</summary>
    public const string AsyncBounce = "AsyncBounce";

    /// <summary>A complaint: an ARF feedback report (RFC 5965) about the message.</summary>
    public const string Complaint = "Complaint";
}

/// <summary>
/// One recipient's outcome, as a bulk sender's systems receive it (JSON, snake_case). <see cref="Id"/> is the same each
/// time the same outcome is reported (a job whose attempt is run again reports it again), so a receiver deduplicates by
/// it: delivery of events is at least once.
/// </summary>
public sealed record MailEvent
{
    /// <summary>Names this outcome: a hash of the job, its attempt, the recipient and the type.</summary>
    [JsonPropertyName("id")] public required string Id { get; init; }

    /// <summary>One of <see cref="MailEventTypes"/>.</summary>
    [JsonPropertyName("type")] public required string Type { get; init; }

    /// <summary>When it happened (UTC).</summary>
    [JsonPropertyName("timestamp")] public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The message's <c>Message-ID</c> header field (for a returned report: the original's, when it quotes it).</summary>
    [JsonPropertyName("message_id")] public string? MessageId { get; init; }

    /// <summary>The message's queue id.</summary>
    [JsonPropertyName("queue_id")] public required string QueueId { get; init; }

    /// <summary>The delivery job, when there is one.</summary>
    [JsonPropertyName("job_id")] public string? JobId { get; init; }

    /// <summary>The recipient.</summary>
    [JsonPropertyName("recipient")] public required string Recipient { get; init; }

    /// <summary>The envelope sender.</summary>
    [JsonPropertyName("sender")] public required string Sender { get; init; }

    /// <summary>Where the recipient was routed (<c>smtp:[host]:port</c>, <c>local</c>, …).</summary>
    [JsonPropertyName("next_hop")] public string? NextHop { get; init; }

    /// <summary>The host that answered, as the log's <c>relay=</c>.</summary>
    [JsonPropertyName("remote_host")] public string? RemoteHost { get; init; }

    /// <summary>The reply, or the reason.</summary>
    [JsonPropertyName("reply")] public string? Reply { get; init; }

    /// <summary>The enhanced status code (RFC 3463).</summary>
    [JsonPropertyName("enhanced_status")] public string? EnhancedStatus { get; init; }

    /// <summary>The bounce classification of a failure (<c>invalid_recipient</c>, …); null for a delivery.</summary>
    [JsonPropertyName("category")] public string? Category { get; init; }

    /// <summary>Which attempt this was (1 for the first).</summary>
    [JsonPropertyName("attempt")] public int Attempt { get; init; }

    /// <summary>When the message arrived.</summary>
    [JsonPropertyName("arrival")] public DateTimeOffset Arrival { get; init; }

    /// <summary>The message's size in octets as received.</summary>
    [JsonPropertyName("size")] public long Size { get; init; }

    /// <summary>The message's tags (the campaign, the tenant, …).</summary>
    [JsonPropertyName("tags")] public IReadOnlyDictionary<string, string>? Tags { get; init; }

    /// <summary>The tenant whose webhooks get the event (the <c>tenant</c> tag), or null for the default ones.</summary>
    [JsonIgnore] public string? Tenant => Tags?.GetValueOrDefault("tenant");

    /// <summary>
    /// The events of one <c>events</c> queue message: a JSON array (the group commit's) or one event. Throws
    /// <see cref="System.Text.Json.JsonException"/> for anything else.
    /// </summary>
    public static IReadOnlyList<MailEvent> ParseBatch(string message)
        => message.TrimStart().StartsWith('[')
            ? System.Text.Json.JsonSerializer.Deserialize<List<MailEvent>>(message) ?? []
            : [System.Text.Json.JsonSerializer.Deserialize<MailEvent>(message) ?? throw new System.Text.Json.JsonException("null")];

    /// <summary>The id for an outcome: the same inputs, the same id.</summary>
    public static string IdFor(string jobId, int attempt, string recipient, string type)
        => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{jobId}\n{attempt}\n{recipient}\n{type}")))[..32].ToLowerInvariant();
}

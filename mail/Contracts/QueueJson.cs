using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mta.Mail.Contracts;

/// <summary>
/// The one JSON shape of every queue message: camelCase names, enums as strings.
/// Producers and consumers both go through here so the contract cannot drift.
/// </summary>
public static class QueueJson
{
    /// <summary>Serializer options for queue messages.</summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Serializes a queue message body.</summary>
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    /// <summary>
    /// Parses a queue message body. Throws <see cref="InvalidQueueMessageException"/> for anything
    /// that is not a complete message of the expected type, so the trigger retries and then poisons it.
    /// </summary>
    public static T Deserialize<T>(string text) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(text, Options)
                ?? throw new InvalidQueueMessageException($"empty {typeof(T).Name} message");
        }
        catch (JsonException e)
        {
            throw new InvalidQueueMessageException($"malformed {typeof(T).Name} message: {e.Message}", e);
        }
    }
}

/// <summary>A queue message that does not match its contract.</summary>
public sealed class InvalidQueueMessageException(string message, Exception? inner = null) : Exception(message, inner);

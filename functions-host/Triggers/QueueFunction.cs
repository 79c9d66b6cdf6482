using System.Text.Json;
using Mta.Functions.Host.Protocol;

namespace Mta.Functions.Host.Triggers;

/// <summary>
/// A queue-triggered function as the worker indexed it: its name and id, its trigger binding read from the raw
/// binding JSON (queue, connection setting, parameter name), and how the host binds the trigger value — as
/// ModelBindingData when the binding says <c>supportsDeferredBinding</c> (SDK types such as <c>QueueMessage</c>),
/// else as the message text.
/// </summary>
/// <param name="Name">The function's name (<c>[Function]</c>).</param>
/// <param name="FunctionId">The id the worker gave it, used in load and invocation requests.</param>
/// <param name="QueueName">The trigger's queue.</param>
/// <param name="Connection">The setting that holds the storage connection.</param>
/// <param name="ParameterName">The trigger parameter's name, which the invocation's input binding carries.</param>
/// <param name="DeferredBinding">Whether the trigger value goes as ModelBindingData.</param>
/// <param name="Metadata">The metadata as the worker sent it, sent back in the load request.</param>
public sealed record QueueFunction(string Name, string FunctionId, string QueueName, string Connection, string ParameterName,
    bool DeferredBinding, RpcFunctionMetadata Metadata)
{
    /// <summary>The connection setting a trigger without one uses.</summary>
    public const string DefaultConnection = "AzureWebJobsStorage";

    /// <summary>
    /// Reads a function's trigger. A function with another trigger is an error: this host would silently not run it,
    /// which is worse than not starting.
    /// </summary>
    public static QueueFunction From(RpcFunctionMetadata metadata)
    {
        var bindings = metadata.RawBindings.Select(ParseBinding).ToList();
        var trigger = bindings.SingleOrDefault(b => Text(b, "type")?.EndsWith("Trigger", StringComparison.OrdinalIgnoreCase) == true);
        if (trigger.ValueKind == JsonValueKind.Undefined)
            throw new InvalidDataException($"function {metadata.Name} has no trigger");
        var type = Text(trigger, "type")!;
        if (!type.Equals("queueTrigger", StringComparison.OrdinalIgnoreCase))
            throw new NotSupportedException($"function {metadata.Name} has a {type}; this host runs queue triggers only");
        var queue = Text(trigger, "queueName") ?? throw new InvalidDataException($"function {metadata.Name} has no queueName");
        var deferred = trigger.TryGetProperty("properties", out var p) && p.ValueKind == JsonValueKind.Object
            && string.Equals(Text(p, "supportsDeferredBinding"), "true", StringComparison.OrdinalIgnoreCase);
        return new QueueFunction(metadata.Name, metadata.FunctionId, queue, Text(trigger, "connection") ?? DefaultConnection,
            Text(trigger, "name") ?? throw new InvalidDataException($"function {metadata.Name}: trigger binding has no name"),
            deferred, metadata);
    }

    private static JsonElement ParseBinding(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }

    private static string? Text(JsonElement e, string name)
    {
        foreach (var p in e.EnumerateObject())
            if (p.Name.Equals(name, StringComparison.OrdinalIgnoreCase) && p.Value.ValueKind == JsonValueKind.String)
                return p.Value.GetString();
        return null;
    }
}

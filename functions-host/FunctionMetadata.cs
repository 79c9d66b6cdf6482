using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mta.Functions.Host;

/// <summary>
/// One queue-triggered function as the Worker SDK lists it in <c>functions.metadata</c>:
/// the same file the Functions host reads to know what to bind.
/// </summary>
/// <param name="Name">Function name (the <c>[Function]</c> attribute).</param>
/// <param name="ScriptFile">Assembly file that holds the function class.</param>
/// <param name="EntryPoint">Full name of the method, <c>Namespace.Class.Method</c>.</param>
/// <param name="QueueName">Trigger queue.</param>
/// <param name="Connection">Name of the setting that holds the storage connection.</param>
public sealed record QueueFunction(string Name, string ScriptFile, string EntryPoint, string QueueName, string Connection);

/// <summary>Reads <c>functions.metadata</c>.</summary>
public static class FunctionMetadata
{
    /// <summary>The file name the Worker SDK writes into the app's output folder.</summary>
    public const string FileName = "functions.metadata";

    /// <summary>
    /// The queue-triggered functions in an app folder. A function with any other trigger is an
    /// error: the local host would silently not run it, which is worse than not starting.
    /// </summary>
    public static IReadOnlyList<QueueFunction> Load(string appPath)
    {
        var file = Path.Combine(appPath, FileName);
        if (!File.Exists(file))
            throw new FileNotFoundException($"{file} not found: build the functions app first (dotnet build functions)", file);
        var entries = JsonSerializer.Deserialize<List<Entry>>(File.ReadAllText(file), JsonOptions)
            ?? throw new InvalidDataException($"{file}: empty");
        var result = new List<QueueFunction>();
        foreach (var e in entries)
        {
            var trigger = e.Bindings.SingleOrDefault(b => b.Type.EndsWith("Trigger", StringComparison.OrdinalIgnoreCase))
                ?? throw new InvalidDataException($"{file}: function {e.Name} has no trigger");
            if (!trigger.Type.Equals("queueTrigger", StringComparison.OrdinalIgnoreCase))
                throw new NotSupportedException($"{file}: function {e.Name} has a {trigger.Type}; the local host runs queue triggers only");
            if (string.IsNullOrEmpty(trigger.QueueName))
                throw new InvalidDataException($"{file}: function {e.Name} has no queueName");
            result.Add(new QueueFunction(e.Name, e.ScriptFile, e.EntryPoint, trigger.QueueName,
                string.IsNullOrEmpty(trigger.Connection) ? "AzureWebJobsStorage" : trigger.Connection));
        }
        return result;
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    private sealed record Entry(string Name, string ScriptFile, string EntryPoint, List<Binding> Bindings);

    private sealed record Binding(string Type, string? QueueName, string? Connection, [property: JsonPropertyName("name")] string? Name);
}

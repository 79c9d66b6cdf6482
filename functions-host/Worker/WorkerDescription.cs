using System.Text.Json;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// The app folder's <c>worker.config.json</c>, written by the Worker SDK: which program runs the worker
/// (<c>dotnet</c>) and which assembly it runs, as the Functions host reads it before it launches a worker.
/// </summary>
/// <param name="Directory">The folder holding worker.config.json (the app's build or publish output).</param>
/// <param name="Executable">The program to start (<c>defaultExecutablePath</c>).</param>
/// <param name="WorkerPath">The worker assembly (<c>defaultWorkerPath</c>), absolute.</param>
/// <param name="Arguments">Arguments for the program before the worker path (<c>arguments</c>).</param>
/// <param name="WorkerArguments">Arguments after the worker path (<c>workerArguments</c>).</param>
public sealed record WorkerDescription(string Directory, string Executable, string WorkerPath,
    IReadOnlyList<string> Arguments, IReadOnlyList<string> WorkerArguments)
{
    /// <summary>The file name the Worker SDK writes into the app folder.</summary>
    public const string FileName = "worker.config.json";

    /// <summary>Reads the description in <paramref name="appPath"/>; a missing or incomplete file is an error naming it.</summary>
    public static WorkerDescription Load(string appPath)
    {
        var file = Path.Combine(appPath, FileName);
        if (!File.Exists(file))
            throw new FileNotFoundException($"{file} not found: build or publish the functions app first (dotnet build functions)", file);
        using var doc = JsonDocument.Parse(File.ReadAllText(file));
        if (!doc.RootElement.TryGetProperty("description", out var d))
            throw new InvalidDataException($"{file}: no \"description\"");
        var executable = Text(d, "defaultExecutablePath") ?? throw new InvalidDataException($"{file}: no defaultExecutablePath");
        var worker = Text(d, "defaultWorkerPath") ?? throw new InvalidDataException($"{file}: no defaultWorkerPath");
        // The host expands {WorkerRoot} in these paths to the folder of worker.config.json.
        worker = Path.GetFullPath(worker.Replace("{WorkerRoot}", appPath), appPath);
        if (!File.Exists(worker))
            throw new FileNotFoundException($"{file}: worker {worker} not found", worker);
        return new WorkerDescription(appPath, executable.Replace("{WorkerRoot}", appPath), worker, List(d, "arguments"), List(d, "workerArguments"));
    }

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;

    private static List<string> List(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Select(a => a.GetString()).OfType<string>().ToList() : [];
}

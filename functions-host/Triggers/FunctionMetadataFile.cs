using System.Text.Json;
using Mta.Functions.Host.Protocol;

namespace Mta.Functions.Host.Triggers;

/// <summary>
/// Reads <c>functions.metadata</c>, the file the Worker SDK writes into the app folder, into the metadata a worker
/// would have sent: the host's own indexing, used when the worker answers <c>use_default_metadata_indexing</c>.
/// </summary>
public static class FunctionMetadataFile
{
    /// <summary>The file name in the app folder.</summary>
    public const string FileName = "functions.metadata";

    /// <summary>Every function listed in <paramref name="appPath"/>'s functions.metadata, each with a new function id.</summary>
    public static IReadOnlyList<RpcFunctionMetadata> Load(string appPath)
    {
        var file = Path.Combine(appPath, FileName);
        if (!File.Exists(file))
            throw new FileNotFoundException($"{file} not found: build the functions app first (dotnet build functions)", file);
        using var doc = JsonDocument.Parse(File.ReadAllText(file));
        var result = new List<RpcFunctionMetadata>();
        foreach (var f in doc.RootElement.EnumerateArray())
        {
            var metadata = new RpcFunctionMetadata
            {
                Name = f.GetProperty("name").GetString() ?? throw new InvalidDataException($"{file}: a function without a name"),
                ScriptFile = f.TryGetProperty("scriptFile", out var s) ? s.GetString() ?? "" : "",
                EntryPoint = f.TryGetProperty("entryPoint", out var e) ? e.GetString() ?? "" : "",
                Language = f.TryGetProperty("language", out var l) ? l.GetString() ?? "" : "",
                Directory = appPath,
                FunctionId = Guid.NewGuid().ToString(),
            };
            if (f.TryGetProperty("bindings", out var bindings))
                metadata.RawBindings.AddRange(bindings.EnumerateArray().Select(b => b.GetRawText()));
            result.Add(metadata);
        }
        return result;
    }
}

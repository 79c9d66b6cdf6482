using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace Mta.Functions.Host.Configuration;

/// <summary>
/// The host's configuration, layered as the Functions host layers it, weakest first: host.json under the
/// <c>AzureFunctionsJobHost</c> section (so <c>AzureFunctionsJobHost__extensions__queues__batchSize</c> in the
/// environment overrides <c>extensions.queues.batchSize</c>); local.settings.json's <c>Values</c>, which as under
/// <c>func start</c> give way to a variable of the same name in the environment; the environment; settings given by
/// the caller (tests); the command line.
/// </summary>
public static class HostConfiguration
{
    /// <summary>The section host.json is bound under (the Functions host's <c>ConfigurationSectionNames.JobHost</c>).</summary>
    public const string JobHostSection = "AzureFunctionsJobHost";

    /// <summary>
    /// Adds every source. <paramref name="appSettings"/> are what the worker's environment gets on top of the host's
    /// own: the local settings the environment does not already set, and <paramref name="settings"/>.
    /// </summary>
    public static IConfigurationBuilder AddFunctionsHostSources(this IConfigurationBuilder config, string appPath,
        IDictionary<string, string?>? settings, string[] args, out IReadOnlyDictionary<string, string?> appSettings)
    {
        var local = LocalSettings(Path.Combine(appPath, "local.settings.json"))
            .Where(kv => Environment.GetEnvironmentVariable(kv.Key.Replace(":", "__")) is null && Environment.GetEnvironmentVariable(kv.Key) is null)
            .ToDictionary(StringComparer.OrdinalIgnoreCase);
        var given = (settings ?? new Dictionary<string, string?>()).ToDictionary(kv => kv.Key.Replace("__", ":"), kv => kv.Value, StringComparer.OrdinalIgnoreCase);
        var app = new Dictionary<string, string?>(local, StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in given) app[key] = value;
        appSettings = app;
        return config
            // The WebJobs SDK reads its own options (queues, logging) from this section instead of "AzureWebJobs".
            .AddInMemoryCollection([new("AzureWebJobsConfigurationSection", JobHostSection)])
            .AddInMemoryCollection(HostJson(Path.Combine(appPath, "host.json")))
            .AddInMemoryCollection(local)
            .AddEnvironmentVariables()
            .AddInMemoryCollection(given)
            .AddCommandLine(args);
    }

    /// <summary>host.json's values, each key under <see cref="JobHostSection"/>.</summary>
    internal static Dictionary<string, string?> HostJson(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} not found: the functions build copies host.json to its output", path);
        var json = new ConfigurationBuilder().AddJsonFile(path).Build();
        return json.AsEnumerable().Where(kv => kv.Value is not null)
            .ToDictionary(kv => JobHostSection + ":" + kv.Key, kv => kv.Value);
    }

    /// <summary>local.settings.json's <c>Values</c>, with <c>__</c> read as a section separator as in environment variables.</summary>
    internal static Dictionary<string, string?> LocalSettings(string path)
    {
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (!File.Exists(path)) return result;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        if (doc.RootElement.TryGetProperty("Values", out var values))
            foreach (var p in values.EnumerateObject())
                result[p.Name.Replace("__", ":")] = p.Value.ToString();
        return result;
    }
}

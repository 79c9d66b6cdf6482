using System.Text.Json;
using Microsoft.Azure.WebJobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Mail;
using Mta.Mail.Metrics;

namespace Mta.Functions.Host;

/// <summary>
/// Builds the local functions host: the WebJobs SDK with the Storage Queues extension, configured
/// from the app's host.json (as the Functions host does) and running the functions listed in its
/// functions.metadata with the app's own service registrations.
/// </summary>
public static class LocalFunctionsHost
{
    /// <summary>
    /// Creates the host for the functions app built into <paramref name="appPath"/>.
    /// Settings come, weakest first, from the app's local.settings.json Values (as <c>func start</c>
    /// reads them), <paramref name="settings"/>, the environment and the command line.
    /// </summary>
    public static IHostBuilder Create(string appPath, string[] args, IDictionary<string, string?>? settings = null)
    {
        var functions = FunctionMetadata.Load(appPath);
        var types = GeneratedFunctions.Emit(functions);
        return new HostBuilder()
            .UseContentRoot(appPath)
            .ConfigureAppConfiguration(config =>
            {
                config.AddInMemoryCollection(HostJsonSettings(Path.Combine(appPath, "host.json")));
                config.AddInMemoryCollection(LocalSettings(Path.Combine(appPath, "local.settings.json")));
                if (settings is not null) config.AddInMemoryCollection(settings);
                config.AddEnvironmentVariables();
                config.AddCommandLine(args);
            })
            .ConfigureLogging((context, logging) =>
            {
                logging.AddConfiguration(context.Configuration.GetSection("AzureWebJobs:logging"));
                logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
            })
            .ConfigureWebJobs(webJobs => webJobs.AddAzureStorageQueues())
            .ConfigureServices((context, services) =>
            {
                services.AddMailPipeline(context.Configuration);
                services.AddPipelineTelemetry(context.Configuration);
                services.AddSingleton<IReadOnlyList<QueueFunction>>(functions);
                services.AddSingleton(sp => new FunctionDispatcher(sp, functions));
                services.AddSingleton<ITypeLocator>(new GeneratedTypeLocator(types));
            });
    }

    /// <summary>
    /// host.json's settings under the section the WebJobs SDK binds from (<c>AzureWebJobs</c>),
    /// so <c>extensions.queues.batchSize</c> configures the queue listener exactly as in Azure.
    /// </summary>
    internal static Dictionary<string, string?> HostJsonSettings(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} not found: the functions build copies host.json to its output", path);
        var json = new ConfigurationBuilder().AddJsonFile(path).Build();
        return json.AsEnumerable().Where(kv => kv.Value is not null)
            .ToDictionary(kv => "AzureWebJobs:" + kv.Key, kv => kv.Value);
    }

    /// <summary>local.settings.json's <c>Values</c>, with <c>__</c> read as a section separator like environment variables.</summary>
    internal static Dictionary<string, string?> LocalSettings(string path)
    {
        var result = new Dictionary<string, string?>();
        if (!File.Exists(path)) return result;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        if (doc.RootElement.TryGetProperty("Values", out var values))
            foreach (var p in values.EnumerateObject())
                result[p.Name.Replace("__", ":")] = p.Value.ToString();
        return result;
    }
}

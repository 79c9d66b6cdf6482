using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Mta.Functions.Host;
using Mta.Functions.Host.Worker;

// Usage: Mta.Functions.Host [--app-path DIR] [Key=Value ...]
// DIR is the functions app's build or publish output (worker.config.json, host.json, local.settings.json); by
// default $AzureWebJobsScriptRoot, as in the Functions image, else the current folder, as under `func start`.
var appPath = Environment.GetEnvironmentVariable("AzureWebJobsScriptRoot") is { Length: > 0 } root ? root : Directory.GetCurrentDirectory();
var rest = new List<string>();
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--app-path" && i + 1 < args.Length) appPath = args[++i];
    else rest.Add(args[i]);
}

try
{
    using var host = LocalFunctionsHost.Create(Path.GetFullPath(appPath), rest.ToArray()).Build();
    var supervisor = host.Services.GetRequiredService<WorkerSupervisor>();
    // A first worker that could not start stops the host, which may still be starting then: whatever the stop cut short
    // (a listener's start, cancelled) is not the news; the worker's failure, reported below, is.
    try { await host.RunAsync(); }
    catch (Exception) when (supervisor.StartFailure is not null) { }
    if (supervisor.StartFailure is { } failure) throw failure;
    return 0;
}
catch (Exception e) when (e is WorkerStartException or FileNotFoundException or InvalidDataException or NotSupportedException)
{
    Console.Error.WriteLine($"mta-functions-host: {e.Message}");
    return 1;
}

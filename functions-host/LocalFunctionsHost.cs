using Microsoft.Azure.WebJobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Configuration;
using Mta.Functions.Host.Invocation;
using Mta.Functions.Host.Rpc;
using Mta.Functions.Host.Triggers;
using Mta.Functions.Host.Worker;

namespace Mta.Functions.Host;

/// <summary>
/// Builds the local functions host: the worker supervisor (gRPC endpoint, worker process, handshake), the WebJobs
/// SDK with the Storage Queues extension listening for the functions the worker loaded, and the shutdown grace
/// period. Hosted services start in that order and stop in the reverse one: the grace period begins, the listeners
/// stop and invocations in flight finish, then the worker is terminated and the endpoint closed.
/// </summary>
public static class LocalFunctionsHost
{
    /// <summary>
    /// Creates the host for the functions app in <paramref name="appPath"/> (its build or publish output).
    /// <paramref name="settings"/> are app settings: the host reads them, and the worker gets them in its environment.
    /// </summary>
    public static IHostBuilder Create(string appPath, string[] args, IDictionary<string, string?>? settings = null)
    {
        IReadOnlyDictionary<string, string?> appSettings = new Dictionary<string, string?>();
        return new HostBuilder()
            .UseContentRoot(appPath)
            .ConfigureAppConfiguration(config => config.AddFunctionsHostSources(appPath, settings, args, out appSettings))
            .ConfigureLogging((context, logging) =>
            {
                logging.AddConfiguration(context.Configuration.GetSection(HostConfiguration.JobHostSection + ":logging"));
                logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
            })
            .ConfigureServices((context, services) => AddWorker(services, FunctionsHostOptions.From(context.Configuration), appPath, appSettings))
            .ConfigureWebJobs(webJobs => webJobs.AddAzureStorageQueues())
            .ConfigureServices(services =>
            {
                services.AddSingleton<Microsoft.Azure.WebJobs.Host.Timers.IWebJobsExceptionHandler, Worker.WorkerStartExceptionHandler>();
                services.AddSingleton<ShutdownGrace>();
                services.AddHostedService(sp => sp.GetRequiredService<ShutdownGrace>());
            });
    }

    private static void AddWorker(IServiceCollection services, FunctionsHostOptions options, string appPath, IReadOnlyDictionary<string, string?> appSettings)
    {
        services.AddSingleton(options);
        services.AddSingleton(WorkerDescription.Load(appPath));
        services.AddSingleton<WorkerConnections>();
        services.AddSingleton<RpcLogRelay>();
        services.AddSingleton<RpcServer>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<WorkerHandshake>(sp, appSettings));
        services.AddSingleton<WorkerSupervisor>();
        services.AddHostedService(sp => sp.GetRequiredService<WorkerSupervisor>());
        services.AddSingleton<FunctionInvoker>();
        services.AddSingleton<ITypeLocator>(sp =>
        {
            var types = new Lazy<IReadOnlyList<Type>>(() => GeneratedFunctions.Emit(sp.GetRequiredService<WorkerSupervisor>().Functions));
            return new GeneratedTypeLocator(() => types.Value);
        });
        services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownGracePeriod + WorkerSupervisor.TerminateGracePeriod + TimeSpan.FromSeconds(10));
    }
}

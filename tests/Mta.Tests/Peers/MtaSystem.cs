using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Functions.Host;
using Mta.Ingress;
using Mta.Mail;

namespace Mta.Tests.Peers;

/// <summary>
/// The MTA itself for a test: the ingress and the local functions host in this process, the functions themselves in
/// the functions app's isolated worker, a process of its own that the host launches and drives over gRPC as in
/// production; against a given storage account, with their own data folder and SMTP port.
/// </summary>
public sealed class MtaSystem : IAsyncDisposable
{
    private readonly WebApplication? _ingress;
    private readonly IHost? _functions;

    /// <summary>The ingress's SMTP port.</summary>
    public int SmtpPort { get; }

    /// <summary>Where the functions process serves its Prometheus metrics (<c>/metrics</c>).</summary>
    public int MetricsPort { get; private init; }

    /// <summary>The data folder (Maildirs live under maildir/).</summary>
    public string DataDirectory { get; }

    /// <summary>The MTA's log lines: the functions' (categories under Mta.) and the ingress's (smtpd), Information and up, and every error.</summary>
    public LogCapture Log { get; }

    /// <summary>The functions host, when started.</summary>
    public IHost Functions => _functions ?? throw new InvalidOperationException("functions not started");

    /// <summary>
    /// The mail pipeline's services with this system's settings, in the test process: a stand-in for a second worker,
    /// for tests that run a stage's step by hand (a duplicate run, a crash between two writes).
    /// </summary>
    public IServiceProvider MailServices => _mail.Value;

    private readonly Lazy<ServiceProvider> _mail;

    private MtaSystem(WebApplication? ingress, IHost? functions, int port, string data, LogCapture log, IReadOnlyDictionary<string, string?> settings)
    {
        Log = log;
        _ingress = ingress;
        _functions = functions;
        SmtpPort = port;
        DataDirectory = data;
        _mail = new(() => new ServiceCollection()
            .AddLogging(logging => logging.AddProvider(log))
            .AddMailPipeline(new ConfigurationBuilder().AddInMemoryCollection(settings).Build())
            .BuildServiceProvider());
    }

    /// <summary>
    /// Starts the parts asked for. <paramref name="settings"/> are configuration keys
    /// (e.g. <c>Mta:DnsServers:0</c>) added on top of the defaults for tests.
    /// </summary>
    /// <summary>
    /// The functions host's allow-list of every function but Events: events stay on their queue for a test to read.
    /// </summary>
    public static IReadOnlyDictionary<string, string?> AllButEvents { get; } = new Dictionary<string, string?>
    {
        ["AzureFunctionsJobHost:functions:0"] = "Cleanup", ["AzureFunctionsJobHost:functions:1"] = "Delivery",
        ["AzureFunctionsJobHost:functions:2"] = "Retry", ["AzureFunctionsJobHost:functions:3"] = "Bounce",
    };

    public static async Task<MtaSystem> StartAsync(string storage, IDictionary<string, string?>? settings = null,
        bool ingress = true, bool functions = true)
    {
        var port = TestEnvironment.FreeTcpPort();
        var data = TestEnvironment.TempFolder("data");
        var all = new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = storage,
            ["Ingress:Port"] = port.ToString(),
            ["Mta:DataDirectory"] = data,
            ["Mta:MyHostname"] = "mta.test",
            ["Mta:MetricsPort"] = TestEnvironment.FreeTcpPort().ToString(),
            // Every peer here is on loopback, MX hosts from dnsmasq included: a test that checks the refusal turns it off.
            ["Mta:DeliverToInternalNetworks"] = "true",
            // Poll fast in tests; the rest of host.json applies as written.
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = "00:00:00.500",
            // Quiet hosts: the test output is for the tests' own messages.
            ["Logging:LogLevel:Default"] = "Warning",
            ["AzureFunctionsJobHost:logging:logLevel:default"] = "Warning",
            ["Logging:LogLevel:Azure.Core"] = "Error",
            ["AzureFunctionsJobHost:logging:logLevel:Azure.Core"] = "Error",
            // A test's end stops the host; invocations in flight then get little time.
            ["FunctionsHost:ShutdownGracePeriod"] = "00:00:02",
        };
        foreach (var kv in settings ?? new Dictionary<string, string?>()) all[kv.Key] = kv.Value;

        var capture = new LogCapture();
        WebApplication? app = null;
        IHost? host = null;
        if (ingress)
        {
            app = IngressHost.Build([], all, logging =>
            {
                logging.AddProvider(capture);
                logging.AddFilter<LogCapture>("", LogLevel.Error);
                logging.AddFilter<LogCapture>("smtpd", LogLevel.Information);
                logging.AddFilter<LogCapture>("postscreen", LogLevel.Information);
                logging.AddFilter<LogCapture>("Mta.Mail.Cleanup", LogLevel.Information); // content checks and cleanup at DATA
                logging.AddFilter<LogCapture>("Mta.Mail.Feedback", LogLevel.Information); // reports read at DATA
                logging.AddFilter<LogCapture>("Mta.Ingress.Verification", LogLevel.Information); // address probes
                logging.AddFilter<LogCapture>("Mta.Ingress", LogLevel.Warning);
            });
            await app.StartAsync();
        }
        if (functions)
        {
            // The worker (which reads Logging) sends the MTA's own lines from Information up; the host relays them to the
            // log the tests read.
            var worker = new Dictionary<string, string?>(all) { ["Logging:LogLevel:Mta"] = "Information" };
            // The worker as the image ships it (ReadyToRun): what is tested is what ships, and it starts on less CPU.
            host = LocalFunctionsHost.Create(await PublishedApps.FunctionsAppAsync(), [], worker)
                .ConfigureLogging(logging =>
                {
                    logging.AddProvider(capture);
                    logging.AddFilter<LogCapture>("Mta", LogLevel.Information);
                    logging.AddFilter<LogCapture>("", LogLevel.Error);
                })
                .Build();
            await host.StartAsync();
        }
        return new MtaSystem(app, host, port, data, capture, all) { MetricsPort = int.Parse(all["Mta:MetricsPort"]!) };
    }

    /// <summary>Begins a graceful stop of the ingress (as on SIGTERM); the task ends when it has stopped.</summary>
    public Task StopIngressAsync() => (_ingress ?? throw new InvalidOperationException("ingress not started")).StopAsync();

    /// <summary>Files delivered into a local user's Maildir.</summary>
    public string[] Maildir(string user)
    {
        var folder = Path.Combine(DataDirectory, "maildir", user, "new");
        return Directory.Exists(folder) ? Directory.GetFiles(folder) : [];
    }

    /// <summary>Stops everything started.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_mail.IsValueCreated) await _mail.Value.DisposeAsync();
        if (_functions is not null)
        {
            await _functions.StopAsync(TimeSpan.FromSeconds(10));
            _functions.Dispose();
        }
        if (_ingress is not null)
        {
            await _ingress.StopAsync(TimeSpan.FromSeconds(10));
            await _ingress.DisposeAsync();
        }
    }
}

using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Ingress.Acceptance;
using Mta.Ingress.Auth;
using Mta.Ingress.Metrics;
using OpenTelemetry.Metrics;
using Mta.Ingress.Tls;
using Mta.Ingress.Policy;
using Mta.Ingress.Smtp;
using Mta.Ingress.UpstreamProxy;
using Microsoft.Extensions.Options;
using Mta.Mail;
using Mta.Mail.Configuration;
using Mta.Mail.Queues;
using Mta.Mail.Routing;
using Mta.Mail.Spool;

namespace Mta.Ingress;

/// <summary>Builds the ingress application: Kestrel with the SMTP connection handler and nothing else.</summary>
public static class IngressHost
{
    /// <summary>
    /// Creates the application; <paramref name="settings"/> override configuration (tests use it). Throws
    /// <see cref="InvalidOperationException"/> with every configuration error when the settings cannot work.
    /// </summary>
    public static WebApplication Build(string[] args, IDictionary<string, string?>? settings = null, Action<ILoggingBuilder>? logging = null)
    {
        var builder = CreateBuilder(args, settings, logging);
        var (ingress, findings) = CheckConfiguration(builder.Configuration);
        ConfigFindings.ThrowOnErrors(findings);
        AddServices(builder.Services, builder.Configuration);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(ingress.DrainSeconds));
        builder.WebHost.ConfigureKestrel(kestrel => Listen(kestrel, ingress));
        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Mta.Ingress");
        ConfigFindings.LogWarnings(findings, log);
        LoadFilesNow(app.Services);
        var metrics = app.Services.GetRequiredService<IngressMetrics>();
        metrics.WatchSharedState(Screening.PassCache.TableName, () => app.Services.GetRequiredService<Screening.PassCache>().Requests);
        metrics.WatchSharedState(SharedRateTable.TableName, () => app.Services.GetRequiredService<ClientRates>().Requests);
        var tls = app.Services.GetRequiredService<TlsCertificates>().Configured;
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            foreach (var line in ListenerBanner.Lines(ingress, tls)) log.LogInformation("{Listener}", line);
        });
        if (ingress.InjectionPort > 0)
        {
            var endpoint = InjectionEndpointFor(app.Services, ingress, log);
            app.MapPost("/api/inject/v1", (Delegate)endpoint.HandleAsync);
            app.MapGet("/api/inject/v1/openapi.json", (Delegate)endpoint.Describe);
            metrics.WatchSharedState(Injection.InjectionLedger.TableName, () => app.Services.GetRequiredService<Injection.InjectionLedger>().Requests);
        }
        if (ingress.HealthPort > 0)
        {
            app.MapGet("/healthz", () => "ok");
            app.MapPrometheusScrapingEndpoint(); // GET /metrics, on the health port only (the SMTP ports speak SMTP)
        }
        return app;
    }

    private static Injection.InjectionEndpoint InjectionEndpointFor(IServiceProvider services, IngressOptions ingress, ILogger log)
    {
        var tables = services.GetRequiredService<StorageConnection>().TableService();
        var injectionLog = services.GetRequiredService<ILoggerFactory>().CreateLogger("injection");
        var rates = new Injection.TenantRates(ingress,
            Injection.TenantRates.Configured(ingress) ? new SharedRateTable(tables.GetTableClient(SharedRateTable.TableName)) : null, TimeProvider.System, injectionLog);
        return new Injection.InjectionEndpoint(new Injection.InjectionTokens(ingress.InjectionTokensFile, log),
            services.GetRequiredService<MessageAcceptor>(), services.GetRequiredService<Injection.InjectionLedger>(), rates, ingress,
            services.GetRequiredService<IOptions<MtaOptions>>().Value.MyHostname, TimeProvider.System, injectionLog);
    }

    private static WebApplicationBuilder CreateBuilder(string[] args, IDictionary<string, string?>? settings, Action<ILoggingBuilder>? logging)
    {
        // The content root is where the program is, not the working directory: appsettings.json is found wherever the
        // ingress is started from, and the watch that reloads it covers the program's folder only (rooted at a
        // checkout it put inotify watches on every folder below, node_modules included: seconds of start-up).
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        if (settings is not null) builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Logging.AddFilter("Azure.Core", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging?.Invoke(builder.Logging);
        // Not Kestrel's "Now listening on: http://…" for ports that speak SMTP: ListenerBanner says what listens where.
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        return builder;
    }

    /// <summary>
    /// The start's configuration check: the <c>Mta</c> settings as <c>mtactl config check</c> checks them, then the
    /// <c>Ingress</c> ones. Decides only; <see cref="Build"/> acts on the findings.
    /// </summary>
    internal static IngressConfiguration CheckConfiguration(IConfiguration configuration)
    {
        var mta = MtaOptionsValidator.Check(configuration);
        var ingress = IngressOptionsValidator.Check(configuration, mta.Options);
        return ingress with { Findings = [.. mta.Findings, .. ingress.Findings] };
    }

    private static void AddServices(IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<IngressOptions>().Bind(configuration.GetSection(IngressOptions.Section)).PostConfigure(o => o.ApplyDefaults());
        services.AddMailPipeline(configuration);
        services.AddSingleton<RelayPolicy>();
        services.AddSingleton<Verification.AddressVerifier>();
        services.AddSingleton<ClientLimits>();
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<IngressOptions>>().Value;
            var counted = o.ConnectionRatePerClient > 0 || o.MessageRatePerClient > 0 || o.RecipientRatePerClient > 0 || o.AuthRatePerClient > 0
                || o.AuthFailureLimit > 0 && sp.GetRequiredService<SaslUsers>().Configured;
            var table = counted ? new SharedRateTable(sp.GetRequiredService<StorageConnection>().TableService().GetTableClient(SharedRateTable.TableName)) : null;
            return new ClientRates(o, sp.GetRequiredService<RelayPolicy>(), table, TimeProvider.System, sp.GetRequiredService<ILoggerFactory>().CreateLogger("smtpd"));
        });
        services.AddSingleton(sp => new Injection.InjectionLedger(
            sp.GetRequiredService<StorageConnection>().TableService().GetTableClient(Injection.InjectionLedger.TableName), TimeProvider.System,
            TimeSpan.FromSeconds(sp.GetRequiredService<IOptions<IngressOptions>>().Value.InjectionKeyLifetimeSeconds)));
        services.AddSingleton(sp => Screening.PostscreenSettings.From(sp.GetRequiredService<IOptions<IngressOptions>>().Value));
        services.AddSingleton(sp => new Screening.PassCache(
            sp.GetRequiredService<Screening.PostscreenSettings>().Enabled
                ? sp.GetRequiredService<StorageConnection>().TableService().GetTableClient(Screening.PassCache.TableName) : null,
            TimeProvider.System));
        services.AddSingleton(sp =>
        {
            var settings = sp.GetRequiredService<Screening.PostscreenSettings>();
            var dnsbl = settings.Dnsbl ? new Screening.DnsblLookup(sp.GetRequiredService<Mta.Mail.Delivery.MxResolver>().Client, settings) : null;
            return new Screening.Postscreen(settings, dnsbl, sp.GetRequiredService<Screening.PassCache>(), TimeProvider.System,
                sp.GetRequiredService<IngressMetrics>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("postscreen"));
        });
        services.AddSingleton(sp => UpstreamProxySettings.From(sp.GetRequiredService<IOptions<IngressOptions>>().Value));
        services.AddSingleton(sp => new UpstreamProxyGate(sp.GetRequiredService<UpstreamProxySettings>(),
            sp.GetRequiredService<IOptions<MtaOptions>>().Value.MyHostname, sp.GetRequiredService<IngressMetrics>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("smtpd")));
        services.AddSingleton<MessageAcceptor>();
        services.AddSingleton<TlsCertificates>();
        services.AddSingleton<SaslUsers>();
        services.AddHostedService<StorageSetup>();
        services.AddSingleton<IngressMetrics>();
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(IngressMetrics.MeterName)
            .AddMeter(Mta.Mail.Metrics.PipelineMetrics.MeterName) // mta_cleanup_messages_total: cleanup runs here
            .AddPrometheusExporter());
    }

    private static void Listen(KestrelServerOptions kestrel, IngressOptions ingress)
    {
        var address = ListenAddress(ingress.ListenAddress);
        Smtp(kestrel, address, ingress.Port, Listener.Mx);
        if (ingress.SubmissionPort > 0) Smtp(kestrel, address, ingress.SubmissionPort, Listener.Submission);
        if (ingress.SubmissionsPort > 0) Smtp(kestrel, address, ingress.SubmissionsPort, Listener.Submissions);
        if (ingress.HealthPort > 0)
            kestrel.Listen(address, ingress.HealthPort);
        if (ingress.InjectionPort > 0)
            kestrel.Listen(address, ingress.InjectionPort, listen =>
            {
                var certificates = kestrel.ApplicationServices.GetRequiredService<TlsCertificates>();
                if (certificates.Configured) listen.UseHttps(https => https.ServerCertificateSelector = (_, _) => certificates.Current);
            });
    }

    /// <summary>
    /// The address to bind: <c>::</c> is dual-stack (IPv4 clients arrive IPv4-mapped), and falls back to <c>0.0.0.0</c>
    /// where the kernel has no IPv6, so one setting serves IPv4-only and dual-stack clusters.
    /// </summary>
    internal static IPAddress ListenAddress(string configured)
    {
        var address = IPAddress.Parse(configured);
        return address.Equals(IPAddress.IPv6Any) && !System.Net.Sockets.Socket.OSSupportsIPv6 ? IPAddress.Any : address;
    }

    // One SMTP listener: its role marked on each connection, then the PROXY header if it expects one (before TLS: the
    // balancer sends it first), then implicit TLS on the submissions port, then the session.
    private static void Smtp(KestrelServerOptions kestrel, IPAddress address, int port, Listener role)
    {
        var services = kestrel.ApplicationServices;
        kestrel.Listen(address, port, listen =>
        {
            var feature = new ListenerFeature(role);
            listen.Use(next => connection =>
            {
                connection.Features.Set(feature);
                return next(connection);
            });
            if (services.GetRequiredService<UpstreamProxySettings>().Expects(ListenerFeature.NameOf(role)))
                listen.Use(services.GetRequiredService<UpstreamProxyGate>().Middleware(implicitTls: role == Listener.Submissions));
            if (role == Listener.Submissions)
            {
                // Implicit TLS (RFC 8314), with the certificate picked per handshake so a renewal applies at once.
                var certificates = services.GetRequiredService<TlsCertificates>();
                listen.UseHttps(https => https.ServerCertificateSelector = (_, _) => certificates.Current);
            }
            listen.UseConnectionHandler<SmtpConnectionHandler>();
        });
    }

    // Fail at start, with the file named, rather than at the first TLS, AUTH or RCPT client: these read their files
    // (certificate, users, recipient tables) and parse the trusted networks when they are made.
    private static void LoadFilesNow(IServiceProvider services)
    {
        services.GetRequiredService<TlsCertificates>();
        services.GetRequiredService<SaslUsers>();
        services.GetRequiredService<LocalRecipients>();
        services.GetRequiredService<RelayPolicy>();
    }

    /// <summary>
    /// Creates the queues and the spool container at start, beside the listeners rather than before them: the writes
    /// create a missing queue or container themselves, so a pod scaled out takes mail as soon as it listens. If storage
    /// is down the ingress still starts and answers 451 until it is back: refusing to start would turn a storage blip
    /// into an outage.
    /// </summary>
    private sealed class StorageSetup(MailQueues queues, MessageSpool spool, ILogger<StorageSetup> log) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken ct)
        {
            try
            {
                await Task.WhenAll(queues.CreateIfNotExistsAsync(ct), spool.CreateIfNotExistsAsync(ct));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogWarning("storage not ready, mail will be deferred with 451 until it is: {Error}", e.Message);
            }
        }
    }
}

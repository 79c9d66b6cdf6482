using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
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
using Mta.Mail;
using Mta.Mail.Queues;
using Mta.Mail.Routing;
using Mta.Mail.Spool;

namespace Mta.Ingress;

/// <summary>Builds the ingress application: Kestrel with the SMTP connection handler and nothing else.</summary>
public static class IngressHost
{
    /// <summary>Creates the application; <paramref name="settings"/> override configuration (tests use it).</summary>
    public static WebApplication Build(string[] args, IDictionary<string, string?>? settings = null, Action<ILoggingBuilder>? logging = null)
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

        builder.Services.AddOptions<IngressOptions>().Bind(builder.Configuration.GetSection(IngressOptions.Section))
            .PostConfigure(o => o.ApplyDefaults());
        builder.Services.AddMailPipeline(builder.Configuration);
        builder.Services.AddSingleton<RelayPolicy>();
        builder.Services.AddSingleton<Verification.AddressVerifier>();
        builder.Services.AddSingleton<ClientLimits>();
        builder.Services.AddSingleton<MessageAcceptor>();
        builder.Services.AddSingleton<TlsCertificates>();
        builder.Services.AddSingleton<SaslUsers>();
        builder.Services.AddHostedService<StorageSetup>();
        builder.Services.AddSingleton<IngressMetrics>();
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(IngressMetrics.MeterName)
            .AddMeter(Mta.Mail.Metrics.PipelineMetrics.MeterName) // mta_cleanup_messages_total: cleanup runs here
            .AddPrometheusExporter());

        var ingress = builder.Configuration.GetSection(IngressOptions.Section).Get<IngressOptions>() ?? new IngressOptions();
        var submission = ingress.SubmissionPort > 0 || ingress.SubmissionsPort > 0;
        if (submission && (string.IsNullOrEmpty(ingress.TlsCertificateFile) || string.IsNullOrEmpty(ingress.TlsKeyFile) || string.IsNullOrEmpty(ingress.UsersFile)))
            throw new InvalidOperationException(
                "Ingress: the submission listeners need Ingress:TlsCertificateFile, Ingress:TlsKeyFile and Ingress:UsersFile (TLS before AUTH, AUTH before mail)");
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(ingress.DrainSeconds));
        // Not Kestrel's "Now listening on: http://…" for ports that speak SMTP: ListenerBanner says what listens where.
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            var address = IPAddress.Parse(ingress.ListenAddress);
            kestrel.Listen(address, ingress.Port, listen => listen.UseConnectionHandler<SmtpConnectionHandler>());
            if (ingress.SubmissionPort > 0)
                kestrel.Listen(address, ingress.SubmissionPort, listen => listen.UseConnectionHandler<SmtpConnectionHandler>());
            if (ingress.SubmissionsPort > 0)
            {
                var certificates = kestrel.ApplicationServices.GetRequiredService<TlsCertificates>();
                kestrel.Listen(address, ingress.SubmissionsPort, listen =>
                {
                    // Implicit TLS (RFC 8314), with the certificate picked per handshake so a renewal applies at once.
                    listen.UseHttps(https => https.ServerCertificateSelector = (_, _) => certificates.Current);
                    listen.UseConnectionHandler<SmtpConnectionHandler>();
                });
            }
            if (ingress.HealthPort > 0)
                kestrel.Listen(address, ingress.HealthPort);
        });
        var app = builder.Build();
        // Fail at start, with the file named, rather than at the first TLS or AUTH client.
        app.Services.GetRequiredService<TlsCertificates>();
        app.Services.GetRequiredService<SaslUsers>();
        WarnAboutOpenRecipients(app.Services, ingress);
        var banner = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Mta.Ingress");
        var tls = app.Services.GetRequiredService<TlsCertificates>().Configured;
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            foreach (var line in ListenerBanner.Lines(ingress, tls)) banner.LogInformation("{Listener}", line);
        });
        if (ingress.HealthPort > 0)
        {
            app.MapGet("/healthz", () => "ok");
            app.MapPrometheusScrapingEndpoint(); // GET /metrics, on the health port only (the SMTP ports speak SMTP)
        }
        return app;
    }

    /// <summary>
    /// Says loudly, at every start, when a class of recipients has no table: every address is then accepted at RCPT,
    /// and the unknown ones bounce later to senders who may be forged (backscatter). Postfix checks local users by
    /// default; here the tables are files that must be mounted.
    /// </summary>
    private static void WarnAboutOpenRecipients(IServiceProvider services, IngressOptions ingress)
    {
        var log = services.GetRequiredService<ILoggerFactory>().CreateLogger("Mta.Ingress");
        if (!services.GetRequiredService<LocalRecipients>().Configured)
            log.LogWarning("warning: no Mta:LocalRecipientsFile (local_recipient_maps): every user in the local domains is accepted, and mail for unknown ones bounces (backscatter)");
        if (services.GetRequiredService<SaslUsers>().Configured && !services.GetRequiredService<RelayPolicy>().KnowsSenderLogins)
            log.LogWarning("warning: no Mta:SenderLoginMapsFile (smtpd_sender_login_maps): an authenticated user may send as any address, and DKIM signs any domain in the signing table for it");
        if (ingress.RelayDomains.Count > 0 && !services.GetRequiredService<RelayPolicy>().KnowsRelayRecipients)
            log.LogWarning("warning: no Ingress:RelayRecipientsFile (relay_recipient_maps): every address in the relay domains {Domains} is accepted, and mail for unknown ones bounces (backscatter)",
                string.Join(", ", ingress.RelayDomains));
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

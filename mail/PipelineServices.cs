using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Bounce;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Delivery;
using Mta.Mail.Delivery.Tls;
using Mta.Mail.Dkim;
using Mta.Mail.Metrics;
using Mta.Mail.Rewriting;
using Mta.Mail.Queues;
using Mta.Mail.Routing;
using Mta.Mail.Shaping;
using Mta.Mail.Spool;
using Mta.Mail.Tracking;

namespace Mta.Mail;

/// <summary>Registers the mail pipeline's services; used by the functions app, the local host and the ingress alike.</summary>
public static class PipelineServices
{
    /// <summary>Adds options, storage clients, routing and the stage services.</summary>
    public static IServiceCollection AddMailPipeline(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<MtaOptions>().Bind(configuration.GetSection(MtaOptions.Section)).PostConfigure(o => o.ApplyDefaults());
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(_ => StorageConnection.From(configuration));
        services.AddSingleton(sp => new MessageSpool(sp.GetRequiredService<StorageConnection>()));
        services.AddSingleton(sp => new MailQueues(sp.GetRequiredService<StorageConnection>()));
        services.AddSingleton(sp =>
        {
            var file = sp.GetRequiredService<IOptions<MtaOptions>>().Value.TransportMapFile;
            return string.IsNullOrEmpty(file) ? TransportMap.Empty : TransportMap.Load(file);
        });
        services.AddSingleton<Router>();
        services.AddSingleton<LocalRecipients>();
        services.AddSingleton(sp => new SpoolReferences(sp.GetRequiredService<StorageConnection>()));
        services.AddSingleton<SpoolLifetime>();
        services.AddSingleton<CompletionLog>();
        services.AddSingleton<PipelineMetrics>();
        services.AddSingleton(sp => new WaitingMail(sp.GetRequiredService<StorageConnection>()));
        services.AddSingleton<AddressRewriter>();
        services.AddSingleton<DkimSigning>();
        services.AddSingleton<ContentInspector>();
        services.AddSingleton<CleanupStage>();
        services.AddSingleton<MxResolver>();
        services.AddSingleton<TlsPolicy>();
        services.AddSingleton<ServerCertificateCheck>();
        services.AddSingleton<MtaStsPolicies>();
        services.AddSingleton(sp => Classification.BounceClassifier.Load(sp.GetRequiredService<IOptions<MtaOptions>>().Value.BounceClassificationFile,
            error => sp.GetRequiredService<ILoggerFactory>().CreateLogger("Mta.Mail.Classification").LogWarning("warning: bounce classification rules not reloaded: {Error}", error)));
        services.AddSingleton(sp => Events.WebhookTargets.Load(sp.GetRequiredService<IOptions<MtaOptions>>().Value.WebhooksFile,
            error => sp.GetRequiredService<ILoggerFactory>().CreateLogger("Mta.Mail.Events").LogError("webhooks: {Error}; keeping the ones in use", error)));
        services.AddSingleton<Events.WebhookStage>();
        services.AddSingleton<Suppression.SuppressionList>();
        services.AddSingleton(sp => Feedback.BounceDomains.Parse(sp.GetRequiredService<IOptions<MtaOptions>>().Value.BounceDomains));
        services.AddSingleton<Feedback.ReturnedMail>();
        services.AddSingleton<TrafficShaper>();
        services.AddSingleton<DeliveryTargets>();
        services.AddSingleton<Submission.SenderLogins>();
        services.AddSingleton(sp => Delivery.Sasl.SaslPasswordMap.Load(sp.GetRequiredService<IOptions<MtaOptions>>().Value,
            e => sp.GetRequiredService<ILoggerFactory>().CreateLogger("smtp").LogWarning(
                "warning: SASL password map changed but could not be read, the previous version stays in use: {Error}", e)));
        services.AddSingleton<SmtpDelivery>();
        services.AddSingleton<MaildirDelivery>();
        services.AddSingleton<LmtpDelivery>();
        services.AddSingleton<RetryPolicy>();
        services.AddSingleton<DeliveryStage>();
        services.AddSingleton<BounceStage>();
        return services;
    }
}

using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace Mta.Mail.Metrics;

/// <summary>Metrics export for the process that runs the stages (the functions worker, or the local host).</summary>
public static class TelemetryServices
{
    /// <summary>
    /// Exports <see cref="PipelineMetrics"/> (and .NET's runtime meters) for Prometheus at <c>http://*:PORT/metrics</c>,
    /// PORT from <c>Mta:MetricsPort</c> (default 9464, the OpenTelemetry Prometheus port; 0 turns the listener off),
    /// and polls queue depths for the gauge.
    /// </summary>
    public static IServiceCollection AddPipelineTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddHostedService<QueueDepthMonitor>();
        var port = configuration.GetValue("Mta:MetricsPort", 9464);
        if (port <= 0) return services;
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(PipelineMetrics.MeterName)
            .AddPrometheusHttpListener(o =>
            {
                o.Port = port;
                // Every interface, so Prometheus in the cluster can scrape the pod (the exporter's Host takes a name only).
                o.ConfigureHttpListener = (_, listener) =>
                {
                    listener.Prefixes.Clear();
                    listener.Prefixes.Add($"http://*:{port}/");
                };
            }));
        return services;
    }
}

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Mail.Queues;

namespace Mta.Mail.Metrics;

/// <summary>Polls every queue's approximate depth for the <c>mta_queue_messages</c> gauge (a scrape never waits on storage).</summary>
public sealed class QueueDepthMonitor(MailQueues queues, PipelineMetrics metrics, ILogger<QueueDepthMonitor> log) : BackgroundService
{
    /// <summary>How often the depths are read: 11 requests each time (every queue and poison queue).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        do
        {
            try { metrics.SetQueueDepths(await queues.CountsAsync(stoppingToken)); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogDebug("queue depths not read: {Error}", e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}

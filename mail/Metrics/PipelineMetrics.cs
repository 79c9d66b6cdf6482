using System.Diagnostics.Metrics;
using Mta.Mail.Delivery;

namespace Mta.Mail.Metrics;

/// <summary>
/// The stages' instruments (meter <c>Mta.Pipeline</c>), exported for Prometheus by the functions process: what cleanup
/// did with each message, each recipient's delivery outcome (deferrals by reason class), delivery latency from arrival,
/// the reports the bounce stage made, duplicates skipped, and the depth of every queue. Names and labels are listed in
/// docs/operations.md; the Grafana dashboard in infra/dashboards is built on them.
/// </summary>
public sealed class PipelineMetrics : IDisposable
{
    /// <summary>The meter's name, for exporters.</summary>
    public const string MeterName = "Mta.Pipeline";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _cleaned;
    private readonly Counter<long> _recipients;
    private readonly Histogram<double> _latency;
    private readonly Counter<long> _reports;
    private long _postponedConcurrency;
    private long _postponedRate;
    private long _throttled;
    private long _duplicates;
    private readonly Counter<long> _webhooks;
    private volatile IReadOnlyDictionary<string, int> _depths = new Dictionary<string, int>();

    /// <summary>Creates the instruments.</summary>
    public PipelineMetrics()
    {
        _cleaned = _meter.CreateCounter<long>("mta_cleanup_messages", description: "Messages through cleanup, by outcome: queued, held, discarded, bounced, rejected (refused in the ingress's reply)");
        _recipients = _meter.CreateCounter<long>("mta_delivery_recipients",
            description: "Recipient delivery attempts, by status (sent, deferred, bounced, expired), transport, enhanced status class and bounce category");
        _latency = _meter.CreateHistogram<double>("mta_delivery_latency", unit: "s", description: "Arrival to delivered, per recipient",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400] });
        _webhooks = _meter.CreateCounter<long>("mta_webhook_events", description: "Events posted to webhooks, by result: ok, failed (tried again later), no_target (no webhook for the tenant)");
        _reports = _meter.CreateCounter<long>("mta_dsn_reports", description: "Delivery status notifications made, by action: failed, delayed, delivered, relayed");
        _meter.CreateObservableCounter("mta_shaping_postponed", () => new[]
            {
                new Measurement<long>(Interlocked.Read(ref _postponedConcurrency), new KeyValuePair<string, object?>("reason", "concurrency")),
                new Measurement<long>(Interlocked.Read(ref _postponedRate), new KeyValuePair<string, object?>("reason", "rate")),
            },
            description: "Times a job found its destination at a shaping limit, by reason: concurrency, rate");
        _meter.CreateObservableCounter("mta_shaping_throttled", () => Interlocked.Read(ref _throttled),
            description: "Throttling replies that lowered a destination's concurrency and rate");
        // Observed rather than added to, so the series exists from the start: the dashboard shows 0, not "no data".
        _meter.CreateObservableCounter("mta_delivery_duplicates_skipped", () => Interlocked.Read(ref _duplicates),
            description: "Jobs found finished before (a queue message seen twice), not delivered again");
        _meter.CreateObservableGauge("mta_queue_messages", () => _depths.Select(d => new Measurement<int>(d.Value, new KeyValuePair<string, object?>("queue", d.Key))),
            description: "Approximate messages per queue (invisible deferred ones included), poison queues too");
    }

    /// <summary>Cleanup finished a message with <paramref name="outcome"/>.</summary>
    public void Cleaned(string outcome) => _cleaned.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>One recipient's attempt ended; <paramref name="category"/> is the failure's (<c>none</c> for a delivery).</summary>
    public void Recipient(string status, string transport, string detail, DateTimeOffset arrival, DateTimeOffset now, string category = "none")
    {
        var dsn = EnhancedStatus.Find(detail) ?? (status == "sent" ? "2.0.0" : "4.0.0");
        // The class and subject (4.4, 5.1) keep the label set small; the full code is in the log line.
        var cls = dsn.Length >= 3 ? dsn[..3] : dsn;
        _recipients.Add(1, new("status", status), new("transport", transport), new("dsn_class", cls), new("category", category));
        if (status == "sent") _latency.Record(Math.Max(0, (now - arrival).TotalSeconds));
    }

    /// <summary><paramref name="events"/> events were posted to a webhook with <paramref name="result"/>.</summary>
    public void WebhookPosted(string result, int events) => _webhooks.Add(events, new KeyValuePair<string, object?>("result", result));

    /// <summary>A report was made for <paramref name="recipients"/> recipients.</summary>
    public void Report(string action, int recipients) => _reports.Add(recipients, new KeyValuePair<string, object?>("action", action));

    /// <summary>A job found its destination at a shaping limit.</summary>
    public void ShapingPostponed(bool rate) => Interlocked.Increment(ref rate ? ref _postponedRate : ref _postponedConcurrency);

    /// <summary>A throttling reply lowered a destination's limits.</summary>
    public void ShapingThrottled() => Interlocked.Increment(ref _throttled);

    /// <summary>A finished job came again and was skipped.</summary>
    public void DuplicateSkipped() => Interlocked.Increment(ref _duplicates);

    /// <summary>The queue depths the gauge reports, from the last poll.</summary>
    public void SetQueueDepths(IReadOnlyDictionary<string, int> depths) => _depths = depths;

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();
}

using System.Diagnostics.Metrics;

namespace Mta.Ingress.Metrics;

/// <summary>
/// The ingress's instruments (meter <c>Mta.Ingress</c>), exported for Prometheus on the health port at <c>/metrics</c>:
/// connections, messages accepted, every 4xx/5xx reply by code, enhanced status and command (the reason), octets
/// accepted, and how long storing a message takes before its 250.
/// </summary>
public sealed class IngressMetrics : IDisposable
{
    /// <summary>The meter's name, for exporters.</summary>
    public const string MeterName = "Mta.Ingress";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _connections;
    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _accepted;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _rejections;
    private readonly Histogram<double> _store;
    private readonly Counter<long> _milterReplies;
    private readonly Histogram<double> _milterLatency;
    private readonly Counter<long> _milterFailures;
    private readonly Counter<long> _screened;

    /// <summary>Creates the instruments.</summary>
    public IngressMetrics()
    {
        _connections = _meter.CreateCounter<long>("mta_ingress_connections", description: "SMTP connections accepted (Postfix: connect from)");
        _active = _meter.CreateUpDownCounter<long>("mta_ingress_sessions_active", description: "SMTP sessions open now");
        _accepted = _meter.CreateCounter<long>("mta_ingress_messages_accepted", description: "Messages stored and answered 250");
        _bytes = _meter.CreateCounter<long>("mta_ingress_message_bytes", unit: "By", description: "Octets of accepted messages");
        _rejections = _meter.CreateCounter<long>("mta_ingress_rejections",
            description: "4xx/5xx replies, by code, enhanced status and command");
        _store = _meter.CreateHistogram<double>("mta_ingress_store_duration", unit: "s",
            description: "Time to write a message to the spool and queue, before its 250",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _milterReplies = _meter.CreateCounter<long>("mta_ingress_milter_replies", description: "Milter events sent, by milter, event and reply (Postfix: milter-reject and friends)");
        _milterLatency = _meter.CreateHistogram<double>("mta_ingress_milter_duration", unit: "s", description: "Time from a milter event to its reply",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _meter.CreateObservableCounter("mta_ingress_shared_state_requests", SharedStateRequests,
            description: "Storage requests for the state the ingress replicas share (postscreen's pass cache, the client rates)");
        _screened = _meter.CreateCounter<long>("mta_ingress_postscreen", description: "postscreen verdicts: pass_old, pass_new, ignore (failed, let through), enforce, drop");
        _milterFailures = _meter.CreateCounter<long>("mta_ingress_milter_failures", description: "Milters that failed (connect, timeout, protocol) and had their default action applied");
    }

    /// <summary>A milter was sent an event and answered (<paramref name="reply"/> is <c>none</c> for a step without a reply).</summary>
    public void MilterReplied(string milter, string @event, string reply, TimeSpan latency)
    {
        _milterReplies.Add(1, new("milter", milter), new("event", @event), new("reply", reply));
        _milterLatency.Record(latency.TotalSeconds, new KeyValuePair<string, object?>("milter", milter), new("event", @event));
    }

    /// <summary>A milter failed (<c>connect</c>, <c>timeout</c>, <c>protocol</c>): its default action was applied.</summary>
    public void MilterFailed(string milter, string reason) => _milterFailures.Add(1, new("milter", milter), new("reason", reason));

    /// <summary>A session began.</summary>
    public void SessionStarted()
    {
        _connections.Add(1);
        _active.Add(1);
    }

    /// <summary>
    /// Counts, as <c>mta_ingress_shared_state_requests_total{table}</c>, the storage requests <paramref name="read"/> reports
    /// for one of the tables the replicas share (postscreen's cache, the client rates).
    /// </summary>
    public void WatchSharedState(string table, Func<long> read)
    {
        lock (_sharedState) _sharedState.Add((table, read));
    }

    private readonly List<(string Table, Func<long> Read)> _sharedState = [];

    private IEnumerable<Measurement<long>> SharedStateRequests()
    {
        lock (_sharedState)
            return _sharedState.Select(s => new Measurement<long>(s.Read(), new KeyValuePair<string, object?>("table", s.Table))).ToList();
    }

    /// <summary>postscreen let a client through, or refused or dropped it.</summary>
    public void Screened(string result) => _screened.Add(1, new KeyValuePair<string, object?>("result", result));

    /// <summary>A session ended.</summary>
    public void SessionEnded() => _active.Add(-1);

    /// <summary>A message was stored and acknowledged.</summary>
    public void Accepted(long size, TimeSpan store, bool tls)
    {
        _accepted.Add(1, new KeyValuePair<string, object?>("tls", tls ? "yes" : "no"));
        _bytes.Add(size);
        _store.Record(store.TotalSeconds);
    }

    /// <summary>A 4xx or 5xx reply went out.</summary>
    public void Rejected(string reply, string command)
    {
        var code = reply.Length >= 3 ? reply[..3] : reply;
        var status = Mta.Mail.Delivery.EnhancedStatus.Find(reply) ?? "none";
        _rejections.Add(1, new("code", code), new("status", status), new("command", command));
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();
}

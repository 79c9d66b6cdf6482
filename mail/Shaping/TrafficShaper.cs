using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Metrics;

namespace Mta.Mail.Shaping;

/// <summary>The answer to "may I send now?": yes after <see cref="Wait"/>, or no, come back after <see cref="Wait"/>.</summary>
/// <param name="Granted">The send may go ahead once <paramref name="Wait"/> has passed.</param>
/// <param name="Wait">How long to wait before sending (granted), or before asking again (not granted).</param>
public readonly record struct Pace(bool Granted, TimeSpan Wait);

/// <summary>
/// Per-destination traffic shaping across every delivery replica, with nothing but the storage account: connection
/// slots as blob leases (<see cref="ConnectionSlots"/>), the message rate and throttling feedback in a table entity per
/// site (<see cref="SiteStates"/>), the limits from the shaping file (<see cref="ShapingRules"/>). A job that finds its
/// destination at a limit waits in the worker only briefly (<c>Mta:ShapingLocalWaitSeconds</c>, and only for a slot this
/// replica holds or a send due that soon); otherwise delivery puts it back on its queue to become due a little later.
/// </summary>
public sealed class TrafficShaper : IAsyncDisposable, IDisposable
{
    /// <summary>How long a replica trusts what it last read of a site's state (the feedback factor) before reading again.</summary>
    private static readonly TimeSpan StateRefresh = TimeSpan.FromSeconds(5);

    private readonly Classification.BounceClassifier _classifier;

    private sealed class SiteLocal
    {
        public readonly SemaphoreSlim Gate = new(1, 1);
        public volatile SiteStates.Snapshot? State;
        public int Tokens;
        public long TokensFrom;
        public long TokensUntil;
        public TaskCompletionSource Freed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly MtaOptions _options;
    private readonly TimeProvider _clock;
    private readonly ILogger<TrafficShaper> _log;
    private readonly PipelineMetrics _metrics;
    private readonly WatchedFile<ShapingRules>? _rules;
    private readonly ConnectionSlots _slots;
    private readonly SiteStates _states;
    private readonly Regex _throttling;
    private readonly ConcurrentDictionary<string, SiteLocal> _sites = new();

    /// <summary>Builds the shaper from the options (and the shaping file, when one is set).</summary>
    public TrafficShaper(StorageConnection storage, IOptions<MtaOptions> options, TimeProvider clock, PipelineMetrics metrics, ILogger<TrafficShaper> log,
        Classification.BounceClassifier? classifier = null)
    {
        _classifier = classifier ?? Classification.BounceClassifier.BuiltIn;
        _options = options.Value;
        _clock = clock;
        _log = log;
        _metrics = metrics;
        if (!string.IsNullOrEmpty(_options.ShapingFile))
            _rules = new WatchedFile<ShapingRules>(_options.ShapingFile, ShapingRules.Parse,
                error => log.LogError("shaping: {Error}; keeping the limits in use", error));
        var lease = TimeSpan.FromSeconds(Math.Clamp(_options.ShapingSlotLeaseSeconds, 15, 60));
        _slots = new ConnectionSlots(storage.Container(ConnectionSlots.ContainerName), lease, clock, log);
        _states = new SiteStates(storage.TableService().GetTableClient(SiteStates.TableName));
        _throttling = new Regex(_options.ShapingThrottlePattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
    }

    /// <summary>Shaping is on (<c>Mta:TrafficShaping</c>); off, only the per-transaction recipient limit applies.</summary>
    public bool Enabled => _options.TrafficShaping;

    /// <summary>The longest a job waits inside a worker for a slot or a send.</summary>
    public TimeSpan LocalWait => TimeSpan.FromSeconds(Math.Max(0, _options.ShapingLocalWaitSeconds));

    /// <summary>The site a next hop's mail is shaped under, from the hosts it resolved to.</summary>
    public ShapingSite SiteFor(NextHop hop, IReadOnlyList<MailHost> hosts) => (_rules?.Value ?? ShapingRules.Empty).SiteFor(hop, hosts);

    private SiteLocal Local(ShapingSite site) => _sites.GetOrAdd(site.Key, _ => new SiteLocal());

    /// <summary>The site's connection limit now: the configured one scaled by the throttling feedback, at least 1.</summary>
    public int Concurrency(ShapingSite site)
        => Math.Max(1, (int)Math.Floor(site.Limits.Concurrency * Factor(site, Local(site).State)));

    private double Factor(ShapingSite site, SiteStates.Snapshot? state)
        => state?.FactorAt(_clock.GetUtcNow(), site.Limits.Recovery) ?? 1;

    /// <summary>Leases a connection slot for <paramref name="site"/>; null when all its slots (as the feedback allows now) are taken.</summary>
    public async Task<SlotLease?> TryAcquireSlotAsync(ShapingSite site, CancellationToken ct)
    {
        if (!Enabled) return SlotLease.Unlimited(site.Key);
        var local = Local(site);
        var now = _clock.GetUtcNow();
        if (local.State is not { } state || now - state.ReadAt > StateRefresh)
            local.State = await _states.ReadAsync(site.Key, now, ct);
        var slot = await _slots.TryAcquireAsync(site.Key, Concurrency(site), () => Pulse(site), ct);
        if (slot is null) _metrics.ShapingPostponed(rate: false);
        return slot;
    }

    /// <summary>True when this replica holds slots of <paramref name="site"/>: one of its connections will come free soon.</summary>
    public bool HoldsSlots(ShapingSite site) => Enabled && _slots.Held(site.Key) > 0;

    /// <summary>Completes when a connection or slot of <paramref name="site"/> comes free in this replica (take it before trying).</summary>
    public Task Freed(ShapingSite site) => Local(site).Freed.Task;

    /// <summary>Wakes jobs of this replica waiting for <paramref name="site"/>.</summary>
    public void Pulse(ShapingSite site)
    {
        var local = Local(site);
        Interlocked.Exchange(ref local.Freed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>
    /// Whether a connection may be kept for another transaction: not when its slot was lost, when it has carried its
    /// destination's messages per connection, or when the feedback lowered the site's concurrency below its slot.
    /// </summary>
    public bool MayKeep(ShapingSite site, SlotLease slot, int uses)
        => !slot.Lost
           && (site.Limits.MessagesPerConnection == 0 || uses < site.Limits.MessagesPerConnection)
           && (!Enabled || slot.Index < Concurrency(site));

    /// <summary>
    /// Takes <paramref name="sends"/> sends from the site's shared rate: granted (after a wait no longer than
    /// <see cref="LocalWait"/>), or not, with when to ask again.
    /// </summary>
    public async Task<Pace> PaceAsync(ShapingSite site, int sends, CancellationToken ct)
    {
        if (!Enabled || site.Limits.MessagesPerSecond <= 0) return new Pace(true, TimeSpan.Zero);
        var local = Local(site);
        await local.Gate.WaitAsync(ct);
        try
        {
            var now = _clock.GetUtcNow();
            if (local.Tokens >= sends && now.UtcTicks < local.TokensUntil)
            {
                local.Tokens -= sends;
                return new Pace(true, TimeSpan.FromTicks(Math.Max(0, local.TokensFrom - now.UtcTicks)));
            }
            local.Tokens = 0;
            for (var attempt = 0; attempt < 8; attempt++)
            {
                var seen = local.State ?? await _states.ReadAsync(site.Key, now, ct);
                var rate = site.Limits.MessagesPerSecond * Factor(site, seen);
                var interval = TimeSpan.FromSeconds(1 / rate).Ticks;
                // A few sends per write when the rate allows it: fewer storage requests, a burst of at most this many.
                var chunk = Math.Max(sends, Math.Clamp((int)(rate / 4), 1, 10));
                var start = Math.Max(seen.Tat, now.UtcTicks);
                var wait = TimeSpan.FromTicks(start - now.UtcTicks);
                if (wait > LocalWait)
                {
                    _metrics.ShapingPostponed(rate: true);
                    return new Pace(false, wait - LocalWait / 2);
                }
                var next = new SiteStates.Snapshot { Tat = start + chunk * interval, Factor = seen.Factor, ThrottledAt = seen.ThrottledAt, ReadAt = now };
                if (await _states.TryWriteAsync(site.Key, site.Name, seen, next, ct))
                {
                    local.State = next;
                    local.Tokens = chunk - sends;
                    local.TokensFrom = start;
                    local.TokensUntil = next.Tat;
                    return new Pace(true, wait);
                }
                local.State = await _states.ReadAsync(site.Key, now, ct);
                now = _clock.GetUtcNow();
            }
            return new Pace(false, TimeSpan.FromSeconds(1));
        }
        finally
        {
            local.Gate.Release();
        }
    }

    /// <summary>
    /// True for a reply that says the destination wants less from us: 421, or a 4xx about rates and volume (the
    /// throttle pattern, or the bounce classification's <c>rate_limited</c>).
    /// </summary>
    public bool IsThrottling(string reply)
        => reply.StartsWith("421", StringComparison.Ordinal)
           || reply.StartsWith('4') && (_throttling.IsMatch(reply) || _classifier.Classify(reply) == Classification.BounceCategory.RateLimited);

    /// <summary>
    /// A throttling reply from <paramref name="site"/> (Postfix's destination concurrency feedback): its concurrency and rate
    /// are halved for every replica, at most once per half recovery period however many replicas saw it, and grow back by
    /// a tenth each recovery period.
    /// </summary>
    public async Task ThrottledAsync(ShapingSite site, string relay, string reply, CancellationToken ct)
    {
        if (!Enabled) return;
        var local = Local(site);
        await local.Gate.WaitAsync(ct);
        try
        {
            for (var attempt = 0; attempt < 4; attempt++)
            {
                var now = _clock.GetUtcNow();
                var seen = await _states.ReadAsync(site.Key, now, ct);
                if (seen.ThrottledAt != DateTimeOffset.MinValue && now - seen.ThrottledAt < site.Limits.Recovery / 2)
                {
                    local.State = seen; // another replica (or job) has just lowered it
                    return;
                }
                var factor = Math.Max(SiteStates.MinimalFactor, seen.FactorAt(now, site.Limits.Recovery) / 2);
                var next = new SiteStates.Snapshot { Tat = seen.Tat, Factor = factor, ThrottledAt = now, ReadAt = now };
                if (!await _states.TryWriteAsync(site.Key, site.Name, seen, next, ct)) continue;
                local.State = next;
                local.Tokens = 0;
                _metrics.ShapingThrottled();
                var rate = site.Limits.MessagesPerSecond > 0 ? $"{site.Limits.MessagesPerSecond * factor:0.##}/s" : "unlimited";
                _log.LogWarning("shaping: {Site} throttled by {Relay} ({Reply}): concurrency {Concurrency}, rate {Rate}, recovering by a tenth every {Recovery}s",
                    site.Name, relay, reply, Concurrency(site), rate, (int)site.Limits.Recovery.TotalSeconds);
                return;
            }
        }
        finally
        {
            local.Gate.Release();
        }
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _slots.DisposeAsync();

    /// <summary>Lets every held slot go (for hosts that dispose synchronously).</summary>
    public void Dispose() => _slots.DisposeAsync().AsTask().GetAwaiter().GetResult();
}

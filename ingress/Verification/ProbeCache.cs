using System.Collections.Concurrent;

namespace Mta.Ingress.Verification;

/// <summary>
/// Postfix's <c>address_verify_map</c>, per replica and in memory: a deliverable address is remembered for
/// <c>address_verify_positive_refresh_time</c>, an undeliverable one for <c>address_verify_negative_refresh_time</c>,
/// an unknown one not at all (the next RCPT asks again). At most <see cref="Capacity"/> entries, so a client sending
/// random names cannot grow it without bound: when full, expired entries go, and if none has expired, nothing new is kept.
/// </summary>
public sealed class ProbeCache(TimeProvider clock, TimeSpan positive, TimeSpan negative)
{
    /// <summary>The most addresses kept.</summary>
    public const int Capacity = 100_000;

    /// <summary>
    /// A full cache is searched for expired entries at most this often: a search reads every entry, and run for each new
    /// address it made each RCPT of a client sending random names cost about 10 ms of CPU once the cache was full.
    /// </summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<string, (VerifyResult Result, DateTimeOffset Until)> _entries = new(Mta.Mail.Routing.AsciiCaseComparer.Instance);
    private readonly Policy.SweepSchedule _sweep = new(SweepInterval);

    /// <summary>The remembered verdict for <paramref name="address"/>, or null when none is fresh.</summary>
    public VerifyResult? Find(string address)
        => _entries.TryGetValue(address, out var entry) && entry.Until > clock.GetUtcNow() ? entry.Result : null;

    /// <summary>Keeps <paramref name="result"/> for as long as its verdict is trusted.</summary>
    public void Remember(string address, VerifyResult result)
    {
        var life = result.Verdict switch { Verdict.Deliverable => positive, Verdict.Undeliverable => negative, _ => TimeSpan.Zero };
        if (life <= TimeSpan.Zero) { _entries.TryRemove(address, out _); return; }
        var now = clock.GetUtcNow();
        if (_entries.Count >= Capacity)
        {
            if (_sweep.Due(now))
                foreach (var stale in _entries.Where(e => e.Value.Until <= now)) _entries.TryRemove(stale.Key, out _);
            if (_entries.Count >= Capacity && !_entries.ContainsKey(address)) return;
        }
        _entries[address] = (result, now + life);
    }

    /// <summary>How many addresses are remembered.</summary>
    public int Count => _entries.Count;

    /// <summary>How many times a full cache was searched for expired entries.</summary>
    internal int Sweeps => _sweep.Sweeps;
}

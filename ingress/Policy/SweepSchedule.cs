namespace Mta.Ingress.Policy;

/// <summary>
/// When a full in-memory table may next be searched for entries to drop: at most once per interval, by whichever caller
/// asks first. A search reads every entry; run for each newcomer refused at a full table, it let a client sending new
/// names pay for a whole search with each one.
/// </summary>
internal sealed class SweepSchedule(TimeSpan interval)
{
    private long _nextTicks;
    private int _sweeps;

    /// <summary>True for one caller once <paramref name="now"/> has reached the next sweep's time, which it moves on.</summary>
    public bool Due(DateTimeOffset now)
    {
        var next = Interlocked.Read(ref _nextTicks);
        if (now.UtcTicks < next || Interlocked.CompareExchange(ref _nextTicks, now.UtcTicks + interval.Ticks, next) != next) return false;
        Interlocked.Increment(ref _sweeps);
        return true;
    }

    /// <summary>How many sweeps were due so far.</summary>
    public int Sweeps => Volatile.Read(ref _sweeps);
}

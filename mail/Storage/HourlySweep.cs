namespace Mta.Mail.Storage;

/// <summary>
/// A clean-up that runs in the background at most once an hour per process (old completion-record tables, old
/// idempotency records): started by the work that makes what it cleans, so a stage with no work does none.
/// </summary>
public sealed class HourlySweep(Func<Task> sweep, Action<Exception> failed)
{
    private long _last = long.MinValue;

    /// <summary>Starts the sweep when an hour has passed since the last one (or none ran); returns at once.</summary>
    public void Maybe()
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _last);
        if (last != long.MinValue && now - last < 3_600_000) return;
        if (Interlocked.CompareExchange(ref _last, now, last) != last) return;
        _ = Task.Run(async () =>
        {
            try { await sweep(); }
            catch (Exception e) { failed(e); }
        });
    }
}

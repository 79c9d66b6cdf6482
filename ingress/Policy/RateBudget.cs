namespace Mta.Ingress.Policy;

/// <summary>
/// The generic cell rate algorithm as anvil's per-client limits need it: at most <c>limit</c> events in any
/// <c>window</c>, a burst of the whole limit allowed after a quiet window. The state is one number, the theoretical
/// arrival time (<c>Tat</c>): the events taken so far are paid up to it, at one interval each. Pure, so replicas can
/// share the state in a table and this decides.
/// </summary>
public static class RateBudget
{
    /// <summary>
    /// Takes up to <paramref name="wanted"/> events at <paramref name="now"/> (UTC ticks) from the schedule at
    /// <paramref name="tat"/>: how many were granted (0 when the limit is reached) and the schedule after them.
    /// </summary>
    public static (int Granted, long Tat) Take(long tat, long now, int limit, TimeSpan window, int wanted)
    {
        var interval = window.Ticks / limit;
        var tolerance = window.Ticks - interval; // a full window's events at once, no more
        var start = Math.Max(tat, now);
        var slack = tolerance - (start - now);
        var granted = slack < 0 ? 0 : (int)Math.Min(slack / interval + 1, wanted);
        return (granted, start + granted * interval);
    }

    /// <summary>When the next event would be granted (UTC ticks), for a schedule at <paramref name="tat"/>.</summary>
    public static long FreeAt(long tat, int limit, TimeSpan window) => tat - (window.Ticks - window.Ticks / limit);
}

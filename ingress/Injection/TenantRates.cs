using Azure;
using Microsoft.Extensions.Logging;
using Mta.Ingress.Policy;

namespace Mta.Ingress.Injection;

/// <summary>
/// Per-tenant limits on the injection API, for the whole cluster: requests and messages per time unit
/// (<see cref="IngressOptions.InjectionRequestRatePerTenant"/>, <see cref="IngressOptions.InjectionMessageRatePerTenant"/>),
/// each a <see cref="RateBudget"/> schedule in the shared rate table beside anvil's. A request takes all its messages
/// or none: it is refused whole, with the time after which it would pass. One read and one write per limit and
/// request — a request carries many messages, so no local shares are needed. Storage failing lets the request through
/// with a warning, as the SMTP limits do.
/// </summary>
public sealed class TenantRates(IngressOptions options, SharedRateTable? table, TimeProvider clock, ILogger log)
{
    /// <summary>A refusal: what was exceeded, and when to try again (null: never, the request is larger than a whole time unit's budget).</summary>
    public sealed record Refusal(string Detail, TimeSpan? RetryAfter);

    /// <summary>Whether any limit is set (else no table is needed).</summary>
    public static bool Configured(IngressOptions o) => o.InjectionRequestRatePerTenant > 0 || o.InjectionMessageRatePerTenant > 0;

    /// <summary>Counts one request of <paramref name="messages"/> messages for <paramref name="tenant"/>: null, or why it is refused.</summary>
    public async Task<Refusal?> TakeAsync(string tenant, int messages, CancellationToken ct)
    {
        var window = TimeSpan.FromSeconds(options.InjectionRateWindowSeconds);
        if (options.InjectionRequestRatePerTenant is > 0 and var requests
            && await TakeAsync($"InjectRequest|{tenant}", requests, window, 1, ct) is { } wait)
            return new($"more than {requests} requests per {options.InjectionRateWindowSeconds} s for tenant {tenant}", wait);
        if (options.InjectionMessageRatePerTenant is > 0 and var limit)
        {
            if (messages > limit) return new($"{messages} messages, more than tenant {tenant} may send in {options.InjectionRateWindowSeconds} s ({limit})", null);
            if (await TakeAsync($"InjectMessage|{tenant}", limit, window, messages, ct) is { } later)
                return new($"more than {limit} messages per {options.InjectionRateWindowSeconds} s for tenant {tenant}", later);
        }
        return null;
    }

    /// <summary>The wait before <paramref name="count"/> events fit the schedule at <paramref name="tat"/>; zero when they fit now.</summary>
    public static TimeSpan WaitFor(long tat, long now, int limit, TimeSpan window, int count)
    {
        var interval = window.Ticks / limit;
        var free = tat - (window.Ticks - interval) + (count - 1) * interval;
        return TimeSpan.FromTicks(Math.Max(0, free - now));
    }

    // Null when taken, else the wait.
    private async Task<TimeSpan?> TakeAsync(string key, int limit, TimeSpan window, int count, CancellationToken ct)
    {
        if (table is null) return null;
        try
        {
            for (var attempt = 0; attempt < 5; attempt++)
            {
                var now = clock.GetUtcNow().UtcTicks;
                var seen = await table.ReadAsync(key, ct);
                var (granted, tat) = RateBudget.Take(seen.Tat, now, limit, window, count);
                if (granted < count) return WaitFor(seen.Tat, now, limit, window, count);
                if (await table.TryWriteAsync(key, seen, tat, ct) is not null) return null;
            }
            return null; // five writers in a row came first: let it through rather than refuse on contention
        }
        catch (RequestFailedException e)
        {
            log.LogWarning("warning: tenant rate {Key}: storage failed, the request is let through: {Error}", key, e.Message);
            return null;
        }
    }
}

using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Mail.Delivery;

/// <summary>
/// When deferred mail is tried again, and when it is given up (Postfix's qmgr backoff):
/// the delay doubles from the minimal to the maximal backoff, stretched by up to
/// <see cref="MtaOptions.BackoffJitter"/> so mail deferred together does not come back together;
/// after the maximal queue lifetime a deferred recipient bounces.
/// </summary>
public sealed class RetryPolicy(IOptions<MtaOptions> options)
{
    /// <summary>Azure Storage's longest visibility delay.</summary>
    public static readonly TimeSpan MaximalVisibilityDelay = TimeSpan.FromDays(7);

    private readonly MtaOptions _options = options.Value;

    /// <summary>The delay before the next attempt, after <paramref name="attempt"/> earlier ones.</summary>
    public TimeSpan NextDelay(int attempt) => Delay(attempt, Random.Shared.NextDouble());

    /// <summary>The delay with a given jitter draw in [0, 1): deterministic, for tests.</summary>
    public TimeSpan Delay(int attempt, double draw)
    {
        var min = _options.MinimalBackoffSeconds;
        var max = Math.Max(min, _options.MaximalBackoffSeconds);
        var seconds = Math.Min(min * Math.Pow(2, Math.Clamp(attempt, 0, 30)), max);
        seconds *= 1 + Math.Clamp(_options.BackoffJitter, 0, 1) * draw;
        return TimeSpan.FromSeconds(Math.Min(seconds, MaximalVisibilityDelay.TotalSeconds));
    }

    /// <summary>True when mail that arrived at <paramref name="arrival"/> has waited long enough for a delay warning (off when 0).</summary>
    public bool WarnDelay(DateTimeOffset arrival, DateTimeOffset now)
        => _options.DelayWarningSeconds > 0 && now - arrival >= TimeSpan.FromSeconds(_options.DelayWarningSeconds);

    /// <summary>When mail that arrived at <paramref name="arrival"/> stops being retried (Postfix <c>maximal_queue_lifetime</c>).</summary>
    public static DateTimeOffset GiveUpTime(DateTimeOffset arrival, MtaOptions options) => arrival + TimeSpan.FromSeconds(options.MaximalQueueLifetimeSeconds);

    /// <summary>True when mail that arrived at <paramref name="arrival"/> has been queued too long to try again.</summary>
    public bool Expired(DateTimeOffset arrival, DateTimeOffset now) => now >= GiveUpTime(arrival, _options);
}

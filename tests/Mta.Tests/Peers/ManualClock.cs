namespace Mta.Tests.Peers;

/// <summary>A clock the test moves: both the wall time and the timestamps follow <see cref="Now"/>.</summary>
public sealed class ManualClock : TimeProvider
{
    /// <summary>The time it says it is.</summary>
    public DateTimeOffset Now { get; set; } = new(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => Now;

    /// <inheritdoc />
    public override long GetTimestamp() => Now.UtcTicks;

    /// <inheritdoc />
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <summary>Moves the time on.</summary>
    public void Advance(TimeSpan by) => Now += by;
}

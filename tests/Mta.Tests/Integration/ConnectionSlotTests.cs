using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Mta.Mail.Shaping;
using Mta.Tests.Peers;
using Xunit;
using Xunit.Abstractions;

namespace Mta.Tests.Integration;

/// <summary>Connection slots as blob leases on Azurite: exclusive, kept while renewed, and freed when their holder dies.</summary>
[RunsLong(20)] // a 15-second lease is waited out
public sealed class ConnectionSlotTests(ITestOutputHelper output)
{
    /// <summary>A clock whose timers never fire: a replica that stopped renewing (it died) without letting go.</summary>
    private sealed class DeadReplicaClock : TimeProvider
    {
        private sealed class Never : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;
            public void Dispose() { }
            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new Never();
    }

    [SkippableFact]
    public async Task A_dead_replicas_slot_frees_itself_when_its_lease_runs_out_and_a_live_ones_does_not()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var container = TestEnvironment.Storage(azurite.ConnectionString).Container(ConnectionSlots.ContainerName);
        var lease = TimeSpan.FromSeconds(15); // Azure's shortest
        await using var dead = new ConnectionSlots(container, lease, new DeadReplicaClock(), NullLogger.Instance);
        await using var alive = new ConnectionSlots(container, lease, TimeProvider.System, NullLogger.Instance);
        await using var other = new ConnectionSlots(container, lease, TimeProvider.System, NullLogger.Instance);

        Assert.NotNull(await dead.TryAcquireAsync("crashed", 1, () => { }, default));
        var kept = await alive.TryAcquireAsync("working", 1, () => { }, default);
        Assert.NotNull(kept);
        Assert.Null(await other.TryAcquireAsync("crashed", 1, () => { }, default));
        Assert.Null(await other.TryAcquireAsync("working", 1, () => { }, default));
        Assert.Equal(1, alive.Held("working"));

        var clock = Stopwatch.StartNew();
        SlotLease? freed = null;
        while (freed is null && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(500);
            freed = await other.TryAcquireAsync("crashed", 1, () => { }, default);
        }
        output.WriteLine($"the dead replica's slot was free after {clock.Elapsed.TotalSeconds:0.0}s (lease {lease.TotalSeconds}s)");
        Assert.NotNull(freed);
        Assert.InRange(clock.Elapsed.TotalSeconds, 10, 20);

        // Past its lease time too, the renewed slot is still taken.
        await Task.Delay(TimeSpan.FromSeconds(20) - clock.Elapsed);
        Assert.Null(await other.TryAcquireAsync("working", 1, () => { }, default));
        Assert.False(kept!.Lost);

        // Let go, it is free at once.
        var released = false;
        var second = await alive.TryAcquireAsync("working", 2, () => released = true, default); // slot 1: slot 0 is its own
        Assert.Equal(1, second!.Index);
        await kept.DisposeAsync();
        Assert.Equal(1, alive.Held("working"));
        Assert.NotNull(await other.TryAcquireAsync("working", 1, () => { }, default));
        await second.DisposeAsync();
        Assert.True(released);
    }
}

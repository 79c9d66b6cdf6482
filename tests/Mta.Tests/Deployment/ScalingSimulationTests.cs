using System.Diagnostics;
using System.Text;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;
using Mta.ScalingSim;
using Mta.Tests.Peers;
using Xunit;
using Xunit.Abstractions;

namespace Mta.Tests.Deployment;

/// <summary>
/// Measures what one delivery replica delivers per second here, then replays a burst through the
/// shipped ScaledObjects with that figure: the burst drains, and parked (deferred) mail keeps no
/// delivery replica up, unlike the design where retries wait invisible on the delivery queue.
/// </summary>
[Collection(RunsAlone.Name)] // its replay runs against the clock
public sealed class ScalingSimulationTests(ITestOutputHelper output)
{
    private const int Jobs = 400;

    private static async Task<double> MeasureReplicaThroughputAsync()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var storage = TestEnvironment.Storage(azurite.ConnectionString);
        var spool = new MessageSpool(storage);
        var queues = new MailQueues(storage);
        await spool.CreateIfNotExistsAsync();
        await queues.CreateIfNotExistsAsync();
        var body = "Subject: load\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 76) + "\r\n", 26)); // ~2 KiB
        await spool.WriteAsync("LOAD", new MemoryStream(Encoding.ASCII.GetBytes(body)));
        var job = new DeliveryJob
        {
            MessageId = "LOAD", BlobName = "LOAD", Sender = "load@sender.test", Recipients = ["rcpt@example.test"],
            NextHop = new NextHop { Transport = Transport.Smtp, Host = "127.0.0.1", Port = sink.Port }, ArrivalTime = DateTimeOffset.UtcNow,
        };
        await Task.WhenAll(Enumerable.Range(0, Jobs).Select(_ => queues.SendAsync(QueueNames.Delivery, job)));

        var clock = Stopwatch.StartNew();
        await using var replica = await MtaSystem.StartAsync(azurite.ConnectionString, ingress: false);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(Directory.GetFiles(sink.DumpFolder).Length >= Jobs),
            TimeSpan.FromSeconds(120)), "the replica did not deliver the load");
        return Jobs / clock.Elapsed.TotalSeconds;
    }

    [SkippableFact]
    public async Task Burst_drains_and_deferred_mail_holds_no_delivery_replica()
    {
        var throughput = await MeasureReplicaThroughputAsync();
        var scalers = ScalerSettings.Load(Path.Combine(TestEnvironment.RepoRoot, "keda", "scaledobjects.yaml"));
        var delivery = scalers.Single(s => s.QueueName == QueueNames.Delivery);
        var retry = scalers.Single(s => s.QueueName == QueueNames.Deferred);
        var options = new SimulationOptions { ReplicaThroughput = throughput, Messages = 100_000, BurstSeconds = 60, DurationSeconds = 3600 };

        var shipped = Simulation.Run(delivery, retry, options);
        var rejected = Simulation.Run(delivery with { Strategy = "all" }, retry, options with { DeferredOnDeliveryQueue = true });

        var folder = TestEnvironment.TempFolder("scaling");
        await File.WriteAllTextAsync(Path.Combine(folder, "scaling-simulation.svg"), Report.Svg(shipped, rejected, delivery.MaxReplicas));
        output.WriteLine($"measured: {throughput:0.0} msg/s per delivery replica ({Jobs} jobs, 2 KiB, one local host, Azurite, smtp-sink)");
        output.WriteLine(Report.Markdown(options, shipped, rejected, step: 60));
        output.WriteLine("plot: " + Path.Combine(folder, "scaling-simulation.svg"));

        Assert.All(shipped.Samples, s => Assert.InRange(s.Replicas, 0, delivery.MaxReplicas));
        Assert.All(shipped.Samples, s => Assert.InRange(s.RetryReplicas, 0, retry.MaxReplicas));
        Assert.NotNull(shipped.DrainedAt);
        Assert.Equal(options.Messages, shipped.Samples[^1].Delivered, precision: 0);
        // Waiting mail wakes nothing: delivery is back at zero before the first retry is due,
        // and the retry stage starts only when it is.
        Assert.NotNull(shipped.DeliveryIdleAt);
        Assert.True(shipped.DeliveryIdleAt < options.DeferDelaySeconds, $"delivery idle only at {shipped.DeliveryIdleAt}s");
        Assert.True(shipped.RetryActiveAt >= options.DeferDelaySeconds);
        // Parked on the delivery queue, the same retries would have kept delivery replicas up.
        Assert.True(rejected.DeliveryIdleAt is null || rejected.DeliveryIdleAt > options.DeferDelaySeconds);
        Assert.True(rejected.DeliveryReplicaSeconds > shipped.DeliveryReplicaSeconds);
    }

    [Fact]
    public void Replicas_follow_queue_length_over_queue_length_target_within_the_maximum()
    {
        var s = new ScalerSettings { Name = "t", QueueName = "delivery", PollingInterval = 5, QueueLength = 24, MaxReplicas = 7, CooldownPeriod = 60 };
        var retry = s with { QueueName = "deferred" };
        // A slow replica and a long burst: the backlog stays high, so the HPA asks for ceil(length/24) > 7.
        var run = Simulation.Run(s, retry, new SimulationOptions { ReplicaThroughput = 1, Messages = 10_000, BurstSeconds = 100, DurationSeconds = 300, DeferredFraction = 0 });
        Assert.Equal(7, run.PeakReplicas);
        Assert.Equal(0, run.Samples[0].Ready); // pods are not ready at once
        Assert.Equal(0, run.Samples.First(x => x.Second == 0).RetryReplicas);
        // Nothing arrived: nothing scales.
        var idle = Simulation.Run(s, retry, new SimulationOptions { ReplicaThroughput = 1, Messages = 0, DurationSeconds = 120 });
        Assert.All(idle.Samples, x => Assert.Equal(0, x.Replicas));
    }
}

using Azure.Storage.Queues;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;
using Xunit.Abstractions;

namespace Mta.Tests.Integration;

/// <summary>
/// Per-destination traffic shaping with several delivery workers (separate functions hosts on one Azurite, as replicas
/// share a storage account) against a receiving server that counts what it gets: the limits hold for all workers
/// together, throughput reaches them, and a server that answers 421 under load is backed off from and recovered towards,
/// with nothing lost or bounced.
/// </summary>
[RunsLong(77)]
public sealed class TrafficShapingTests(ITestOutputHelper output)
{
    private const int Workers = 3;

    private sealed class Cluster(AzuriteAccount azurite, List<MtaSystem> systems) : IAsyncDisposable
    {
        public AzuriteAccount Azurite => azurite;
        public MtaSystem Front => systems[0];
        public IEnumerable<string> LogLines => systems.SelectMany(s => s.Log.Lines);

        public async ValueTask DisposeAsync()
        {
            foreach (var s in systems) await s.DisposeAsync();
            await azurite.DisposeAsync();
        }
    }

    /// <summary>An ingress with its worker, and more workers beside it, all delivering example.test to <paramref name="server"/>.</summary>
    private static async Task<Cluster> StartAsync(CountingSmtpServer server, string shaping, Dictionary<string, string?>? extra = null)
    {
        var azurite = await Azurite.LeaseAsync();
        var folder = TestEnvironment.TempFolder("shaping");
        var map = Path.Combine(folder, "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{server.Port}\n");
        var file = Path.Combine(folder, "shaping");
        await File.WriteAllTextAsync(file, shaping);
        var settings = new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = map,
            ["Mta:ShapingFile"] = file,
            ["Mta:MinimalBackoffSeconds"] = "1",
            ["Mta:MaximalBackoffSeconds"] = "2",
            ["Mta:BackoffJitter"] = "0",
            ["Mta:ShapingMaximalPostponeSeconds"] = "2",
            // Keep the test's load on the workers, not on polling an empty queue.
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = "00:00:00.250",
        };
        foreach (var kv in extra ?? []) settings[kv.Key] = kv.Value;
        var systems = new List<MtaSystem> { await MtaSystem.StartAsync(azurite.ConnectionString, settings) };
        for (var i = 1; i < Workers; i++)
            systems.Add(await MtaSystem.StartAsync(azurite.ConnectionString, settings, ingress: false));
        return new Cluster(azurite, systems);
    }

    private static async Task SendAsync(int port, string prefix, int messages, params string[] recipients)
        => await Task.WhenAll(Enumerable.Range(0, 8).Select(async c =>
        {
            for (var i = c; i < messages; i += 8)
            {
                var message = TestMail.Message("sender@localhost", recipients[0], $"{prefix} {i}");
                foreach (var r in recipients.Skip(1)) message.To.Add(MimeKit.MailboxAddress.Parse(r));
                await TestMail.SendAsync(port, message);
            }
        }));

    /// <summary>Every message of a batch arrived, each recipient exactly once.</summary>
    private static async Task AssertAllDeliveredOnceAsync(CountingSmtpServer server, string prefix, int messages, string[] recipients, TimeSpan timeout)
    {
        int Count() => server.Messages.Where(m => m.Subject.StartsWith(prefix + " ", StringComparison.Ordinal)).Sum(m => m.Recipients.Count);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(Count() >= messages * recipients.Length), timeout),
            $"{Count()} of {messages * recipients.Length} recipients delivered");
        await Task.Delay(1000); // a duplicate would come now
        var delivered = server.Messages.Where(m => m.Subject.StartsWith(prefix + " ", StringComparison.Ordinal))
            .SelectMany(m => m.Recipients.Select(r => (m.Subject, r))).ToList();
        Assert.Equal(messages * recipients.Length, delivered.Count);
        Assert.Equal(delivered.Count, delivered.Distinct().Count());
    }

    private static async Task AssertNothingBouncedOrPoisonedAsync(Cluster cluster)
    {
        Assert.Empty(cluster.Front.Maildir("sender"));
        var queues = new QueueServiceClient(cluster.Azurite.ConnectionString);
        foreach (var name in QueueNames.All)
        {
            var poison = queues.GetQueueClient(name + "-poison");
            if ((await poison.ExistsAsync()).Value)
                Assert.Equal(0, (await poison.GetPropertiesAsync()).Value.ApproximateMessagesCount);
        }
    }

    [SkippableFact]
    public async Task Concurrency_messages_per_connection_and_recipients_hold_across_workers_and_are_reached()
    {
        await using var server = CountingSmtpServer.Start();
        server.DelayPerMessage = TimeSpan.FromMilliseconds(100);
        await using var cluster = await StartAsync(server, "[127.0.0.1] concurrency=3 messages_per_connection=5 recipients=2\n");
        string[] recipients = ["a@example.test", "b@example.test", "c@example.test"];

        await SendAsync(cluster.Front.SmtpPort, "limits", 40, recipients);
        await AssertAllDeliveredOnceAsync(server, "limits", 40, recipients, TimeSpan.FromSeconds(120));

        var transactions = server.Messages;
        var perConnection = transactions.GroupBy(m => m.Connection).Select(g => g.Count()).ToList();
        var seconds = (transactions.Max(m => m.At) - transactions.Min(m => m.At)).TotalSeconds;
        output.WriteLine($"{transactions.Count} transactions on {perConnection.Count} connections, peak {server.PeakConnections} at once, " +
                         $"at most {perConnection.Max()} per connection, at most {transactions.Max(m => m.Recipients.Count)} recipients each; " +
                         $"{(transactions.Count - 1) / seconds:0.0} transactions/s (3 connections at 100 ms each allow 30)");
        Assert.Equal(3, server.PeakConnections); // never more, and reached
        Assert.All(perConnection, n => Assert.True(n <= 5, $"{n} transactions on one connection"));
        Assert.All(transactions, m => Assert.True(m.Recipients.Count <= 2, $"{m.Recipients.Count} recipients in one transaction"));
        Assert.Contains(transactions, m => m.Recipients.Count == 2);
        await AssertNothingBouncedOrPoisonedAsync(cluster);
    }

    [SkippableFact]
    public async Task A_message_rate_holds_across_workers_and_is_reached()
    {
        await using var server = CountingSmtpServer.Start();
        await using var cluster = await StartAsync(server, "[127.0.0.1] concurrency=10 rate=5/s\n");
        const int messages = 30;

        await SendAsync(cluster.Front.SmtpPort, "rate", messages, "r@example.test");
        await AssertAllDeliveredOnceAsync(server, "rate", messages, ["r@example.test"], TimeSpan.FromSeconds(120));

        var times = server.Messages.Select(m => m.At).Order().ToList();
        var span = (times[^1] - times[0]).TotalSeconds;
        var busiest = times.Max(t => times.Count(u => u >= t && u < t.AddSeconds(1)));
        output.WriteLine($"{messages} messages in {span:0.00}s: {(messages - 1) / span:0.00}/s on average, at most {busiest} in any second (limit 5/s)");
        // The schedule allows 5 per second plus one taken ahead; three more for jitter between a send's turn and its MAIL
        // command reaching the server: the ingress cleans up and queues all 30 jobs within a second, and turns that a
        // busy machine made late go out together with the next ones (at most 6 when the test runs alone, 9 once in a
        // full `make test`).
        Assert.True(busiest <= 9, $"{busiest} messages within one second");
        Assert.True((messages - 1) / span <= 5.5, $"{(messages - 1) / span:0.00} messages per second on average");
        // Jobs of the burst whose turn is over a second away are put back and come back by queue visibility and polling,
        // which leaves gaps: 3.5-5.1 per second alone.
        Assert.True((messages - 1) / span >= 3.0, $"only {(messages - 1) / span:0.00} messages per second: the rate is not reached");
        await AssertNothingBouncedOrPoisonedAsync(cluster);
    }

    [SkippableFact]
    public async Task Throttling_replies_lower_concurrency_for_every_worker_and_it_recovers_without_loss()
    {
        await using var server = CountingSmtpServer.Start();
        server.DelayPerMessage = TimeSpan.FromMilliseconds(150);
        server.ThrottleAbove = 2;
        await using var cluster = await StartAsync(server, "[127.0.0.1] concurrency=8 recovery=1s\n");
        string[] recipient = ["t@example.test"];

        await SendAsync(cluster.Front.SmtpPort, "busy", 60, recipient);
        await AssertAllDeliveredOnceAsync(server, "busy", 60, recipient, TimeSpan.FromSeconds(180));
        var lowered = cluster.LogLines.Where(l => l.Contains("throttled by")).ToList();
        output.WriteLine($"{server.Refused} connections refused with 421; {lowered.Count} times lowered, first: {lowered.FirstOrDefault()}");
        Assert.True(server.Refused > 0, "the server never had to throttle");
        Assert.NotEmpty(lowered);
        Assert.Matches(@"concurrency [1-4],", lowered[0]);
        Assert.Contains(cluster.LogLines, l => l.Contains("status=deferred") && l.Contains("421 4.7.0"));

        // The server is fine again: after some recovery periods (a tenth each; from the lowest, 1/64, four lift 8 to 3)
        // the workers open more than the throttled level.
        server.ThrottleAbove = null;
        server.ResetPeak();
        await Task.Delay(TimeSpan.FromSeconds(7));
        await SendAsync(cluster.Front.SmtpPort, "calm", 60, recipient);
        await AssertAllDeliveredOnceAsync(server, "calm", 60, recipient, TimeSpan.FromSeconds(120));
        output.WriteLine($"after recovery: peak {server.PeakConnections} connections");
        Assert.InRange(server.PeakConnections, 3, 8);
        await AssertNothingBouncedOrPoisonedAsync(cluster);
    }
}

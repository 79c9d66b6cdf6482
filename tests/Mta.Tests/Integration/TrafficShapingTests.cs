using Azure.Storage.Queues;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;
using Xunit.Abstractions;

namespace Mta.Tests.Integration;

/// <summary>
/// Per-destination traffic shaping with several delivery workers (separate functions hosts on one Azurite, as replicas
/// share a storage account) against receiving servers that count what they get: the limits hold for all workers
/// together, throughput reaches them, and a server that answers 421 under load is backed off from and recovered towards,
/// with nothing lost or bounced.
/// </summary>
[RunsLong(55)]
public sealed class TrafficShapingTests(ITestOutputHelper output, TrafficShapingTests.Cluster cluster) : IClassFixture<TrafficShapingTests.Cluster>
{
    /// <summary>
    /// The workers the tests share, as destinations share a deployment's replicas: an ingress with its worker and two more
    /// workers, and for each test a server of its own behind a relay port with its own line in the shaping file (a test's
    /// limits and throttling touch only its destination).
    /// </summary>
    public sealed class Cluster : IAsyncLifetime
    {
        private const int Workers = 3;

        /// <summary>Each test's destination (mail for <c>NAME.test</c>) and its shaping limits.</summary>
        private static readonly Dictionary<string, string> Limits = new()
        {
            ["limits"] = "concurrency=3 messages_per_connection=5 recipients=2",
            ["rate"] = "concurrency=10 rate=5/s",
            ["busy"] = "concurrency=8 recovery=1s",
        };

        private readonly Dictionary<string, CountingSmtpServer> _servers = Limits.Keys.ToDictionary(name => name, _ => CountingSmtpServer.Start());
        private readonly List<MtaSystem> _systems = [];
        private readonly Lazy<Task<AzuriteAccount>> _started;

        /// <summary>Starts nothing yet: the first test that asks does.</summary>
        public Cluster() => _started = new(StartAsync);

        /// <summary>The server behind <c>NAME.test</c>, once the workers are up.</summary>
        public async Task<CountingSmtpServer> ServerAsync(string name)
        {
            await _started.Value;
            return _servers[name];
        }

        /// <summary>The storage account, once started.</summary>
        public async Task<AzuriteAccount> AzuriteAsync() => await _started.Value;

        /// <summary>The system with the ingress.</summary>
        public MtaSystem Front => _systems[0];

        /// <summary>Every system's log lines.</summary>
        public IEnumerable<string> LogLines => _systems.SelectMany(s => s.Log.Lines);

        private async Task<AzuriteAccount> StartAsync()
        {
            var azurite = await Azurite.LeaseAsync();
            var folder = TestEnvironment.TempFolder("shaping");
            var map = Path.Combine(folder, "transport");
            await File.WriteAllLinesAsync(map, _servers.Select(s => $"{s.Key}.test smtp:[127.0.0.1]:{s.Value.Port}"));
            var file = Path.Combine(folder, "shaping");
            await File.WriteAllLinesAsync(file, _servers.Select(s => $"[127.0.0.1]:{s.Value.Port} {Limits[s.Key]}"));
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
            _systems.Add(await MtaSystem.StartAsync(azurite.ConnectionString, settings));
            for (var i = 1; i < Workers; i++)
                _systems.Add(await MtaSystem.StartAsync(azurite.ConnectionString, settings, ingress: false));
            return azurite;
        }

        /// <inheritdoc />
        public Task InitializeAsync() => Task.CompletedTask;

        /// <inheritdoc />
        public async Task DisposeAsync()
        {
            foreach (var s in _systems) await s.DisposeAsync();
            if (_started.IsValueCreated) await (await _started.Value).DisposeAsync();
            foreach (var server in _servers.Values) await server.DisposeAsync();
        }
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

    private async Task AssertNothingBouncedOrPoisonedAsync()
    {
        Assert.Empty(cluster.Front.Maildir("sender"));
        var queues = new QueueServiceClient((await cluster.AzuriteAsync()).ConnectionString);
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
        var server = await cluster.ServerAsync("limits");
        server.DelayPerMessage = TimeSpan.FromMilliseconds(100);
        string[] recipients = ["a@limits.test", "b@limits.test", "c@limits.test"];

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
        await AssertNothingBouncedOrPoisonedAsync();
    }

    [SkippableFact]
    public async Task A_message_rate_holds_across_workers_and_is_reached()
    {
        var server = await cluster.ServerAsync("rate");
        const int messages = 30;

        await SendAsync(cluster.Front.SmtpPort, "rate", messages, "r@rate.test");
        await AssertAllDeliveredOnceAsync(server, "rate", messages, ["r@rate.test"], TimeSpan.FromSeconds(120));

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
        await AssertNothingBouncedOrPoisonedAsync();
    }

    [SkippableFact]
    public async Task Throttling_replies_lower_concurrency_for_every_worker_and_it_recovers_without_loss()
    {
        var server = await cluster.ServerAsync("busy");
        server.DelayPerMessage = TimeSpan.FromMilliseconds(150);
        server.ThrottleAbove = 2;
        string[] recipient = ["t@busy.test"];

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
        await AssertNothingBouncedOrPoisonedAsync();
    }
}

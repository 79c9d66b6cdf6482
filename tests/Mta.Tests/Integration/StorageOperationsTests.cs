using System.Text.RegularExpressions;
using Mta.Tests.Peers;
using Xunit;
using Xunit.Abstractions;

namespace Mta.Tests.Integration;

/// <summary>
/// Storage requests per delivered message, counted from Azurite's own request log (one <c>Operation=</c> line per
/// request), for a small message (cleaned up in the ingress, travelling inline) and for one that is spooled. Printed for the docs.
/// </summary>
[RunsLong(66)]
public sealed class StorageOperationsTests(StorageOperationsTests.LoggingAzurite storage, ITestOutputHelper output) : IClassFixture<StorageOperationsTests.LoggingAzurite>
{
    /// <summary>
    /// One Azurite that logs its requests, for every case of the class, each in an account of its own: the cases run one
    /// after another and each counts from its own start in the log.
    /// </summary>
    public sealed class LoggingAzurite : IAsyncLifetime
    {
        private int _used;

        /// <summary>Azurite's request log.</summary>
        public string Log { get; } = Path.Combine(TestEnvironment.TempFolder("azurite-log"), "requests.log");

        private Azurite? _azurite;

        /// <summary>Empty storage: the next unused account.</summary>
        public string NextAccount() => _azurite!.AccountConnectionString(Interlocked.Increment(ref _used));

        /// <inheritdoc />
        public async Task InitializeAsync() => _azurite = await Azurite.StartWithAccountsAsync(accounts: 8, debugLog: Log);

        /// <inheritdoc />
        public async Task DisposeAsync()
        {
            if (_azurite is not null) await _azurite.DisposeAsync();
        }
    }

    // Requests that do not scale with messages: polling an empty queue, and creating what exists once.
    private static readonly string[] Overhead = ["Queue_Create", "Container_Create", "Table_Create", "Queue_GetProperties", "Service_ListQueuesSegment"];

    /// <param name="size">Body size.</param>
    /// <param name="messages">Messages counted.</param>
    /// <param name="limit">Most requests per message (receives aside) the test accepts.</param>
    /// <param name="shaping">Traffic shaping: "on" (the defaults), "off", or a shaping file's line for the destination.</param>
    [SkippableTheory]
    [InlineData(2_000, 40, 3, "off")] // cleaned up in the ingress: one queue hop
    [InlineData(2_000, 40, 5, "on")] // + a slot lease and its release per new connection, creating the slot blobs once
    [InlineData(2_000, 40, 6, "* rate=50/s")] // + a table write per few messages
    [InlineData(40_000, 20, 5, "on")] // an attachment-like body, deflated to fit the queue message: inline too
    [InlineData(60_000, 20, 9, "on")] // spooled: + blob put, its read by delivery, its delete
    public async Task Requests_per_delivered_message(int size, int messages, int limit, string shaping)
    {
        var log = storage.Log;
        var account = storage.NextAccount();
        await using var sink = await SmtpSink.StartAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sink.Port}\n");
        var settings = new Dictionary<string, string?> { ["Mta:TransportMapFile"] = map, ["Mta:TrafficShaping"] = (shaping != "off").ToString() };
        if (shaping.Contains('='))
        {
            settings["Mta:ShapingFile"] = Path.Combine(TestEnvironment.TempFolder("shaping"), "shaping");
            await File.WriteAllTextAsync(settings["Mta:ShapingFile"]!, shaping + "\n");
        }
        await using var mta = await MtaSystem.StartAsync(account, settings);

        // Warm up (queues, container and tables get created once), then count from a clean point.
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "warm@example.test", "warm-up"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count == 1), TimeSpan.FromSeconds(60)));
        var start = File.ReadAllLines(log).Length;

        // Base64 of random bytes, as a MIME attachment looks: it deflates to three quarters, no further.
        var body = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(size * 3 / 4), Base64FormattingOptions.InsertLineBreaks);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async c =>
        {
            for (var i = c; i < messages; i += 4)
                await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", $"u{i}@example.test", $"m{i}", body));
        }));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count == messages + 1), TimeSpan.FromSeconds(120)));
        await Task.Delay(1500); // the last deletes and records land after the sink has the message

        var counts = File.ReadLines(log).Skip(start)
            .Select(l => Regex.Match(l, @"Operation=(\w+)")).Where(m => m.Success).GroupBy(m => m.Groups[1].Value)
            .ToDictionary(g => g.Key, g => g.Count());
        foreach (var (op, n) in counts.OrderBy(kv => kv.Key))
            output.WriteLine($"{size} B, shaping {shaping}: {op,-35} {n,6}  {n / (double)messages,6:0.00} per message");
        var sent = mta.Log.Matching("status=sent").Count;
        output.WriteLine($"{size} B, shaping {shaping}: {sent - mta.Log.Matching("status=sent", "conn_use=").Count} connections for {sent} deliveries");
        var receives = counts.GetValueOrDefault("Messages_Dequeue");
        var work = counts.Where(kv => kv.Key != "Messages_Dequeue" && !Overhead.Contains(kv.Key)).Sum(kv => kv.Value);
        output.WriteLine($"{size} B, shaping {shaping}: {work / (double)messages:0.00} requests per message besides receives ({receives} receives, polls included)");

        // Cleaned up by the ingress: put on the delivery queue only, never on incoming; jobs ready together share a put.
        Assert.InRange(counts.GetValueOrDefault("Messages_Enqueue"), 1, messages);
        Assert.True(work <= limit * messages, $"{work / (double)messages:0.00} requests per message (limit {limit})");
    }
}

using System.Text.Json;
using System.Text.RegularExpressions;
using Azure.Data.Tables;
using Mta.Ingress.Injection;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Injected mail all the way to a real server (Postfix's smtp-sink) through the functions app, and the idempotency
/// key's promise: a request cut short by a storage outage, sent again with its key, delivers every message once.
/// </summary>
[RunsLong(40)]
public sealed class InjectionDeliveryTests
{
    private const string Token = "tok-7d41c0e9aa";
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(120);

    /// <summary>A client in Python (urllib): one POST, then the status, the headers that matter and the body, a line each.</summary>
    private const string Client = """
        import sys, urllib.request, urllib.error
        url, token, body, key = sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read(), sys.argv[4]
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        if key: headers["Idempotency-Key"] = key
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=120)
        except urllib.error.HTTPError as e:
            response = e
        print(response.status)
        print(response.headers.get("Retry-After", "") + "|" + response.headers.get("Idempotent-Replayed", ""))
        print(response.read().decode())
        """;

    internal sealed record Answer(int Status, string RetryAfter, bool Replayed, JsonElement Body)
    {
        public List<string> QueueIds => Body.TryGetProperty("queue_ids", out var ids) ? ids.EnumerateArray().Select(e => e.GetString()!).ToList() : [];
    }

    internal static async Task<Answer> PostAsync(int port, object body, string? key = null, string token = Token)
    {
        var python = TestEnvironment.RequireTool("python3");
        var folder = TestEnvironment.TempFolder("inject");
        var (script, file) = (Path.Combine(folder, "client.py"), Path.Combine(folder, $"body-{Guid.NewGuid():N}.json"));
        await File.WriteAllTextAsync(script, Client);
        await File.WriteAllTextAsync(file, body as string ?? JsonSerializer.Serialize(body));
        var (exit, output) = await EndToEndTests.RunAsync(python, script, $"http://127.0.0.1:{port}/api/inject/v1", token, file, key ?? "");
        Assert.True(exit == 0, output);
        var lines = output.Split('\n', 3);
        var headers = lines[1].Split('|');
        return new Answer(int.Parse(lines[0]), headers[0], headers[1] == "true", JsonDocument.Parse(lines[2]).RootElement.Clone());
    }

    internal static async Task<string> TokensFileAsync()
    {
        var tokens = Path.Combine(TestEnvironment.TempFolder("inject"), "tokens");
        await File.WriteAllTextAsync(tokens, $"acme {InjectionTokens.Hash(Token)} example.org\n");
        return tokens;
    }

    private static object Request(int recipients, string domain) => new
    {
        envelope_sender = "bounces@example.org",
        substitutions = new { campaign = "dec-2026" },
        recipients = Enumerable.Range(0, recipients).Select(i => new { email = $"user{i}@{domain}", name = $"User {i}", substitutions = new { n = i } }),
        content = new
        {
            from = new { email = "news@example.org", name = "Acme" },
            subject = "Number {{ n }}",
            text_body = "Your number is {{ n }}.",
            headers = new Dictionary<string, string> { ["X-Campaign"] = "{{ campaign }}" },
            attachments = new[] { new { file_name = "terms.txt", content_type = "text/plain", data = Convert.ToBase64String("The terms, unchanged."u8.ToArray()) } },
        },
        dsn = new { ret = "HDRS", envid = "req-42", notify = "FAILURE,DELAY" },
        tags = new { campaign = "dec-2026" },
    };

    private static async Task<(SmtpSink Sink, string Map)> SinkAsync(string domain)
    {
        var sink = await SmtpSink.StartAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"{domain} smtp:[127.0.0.1]:{sink.Port}\n");
        return (sink, map);
    }

    // Each dump's recipient, from smtp-sink's X-Rcpt-Args line.
    private static List<(int N, string Dump)> Delivered(SmtpSink sink) => sink.Dumps()
        .Select(d => (Match: Regex.Match(d, @"X-Rcpt-Args: <user(\d+)@"), Dump: d))
        .Where(d => d.Match.Success).Select(d => (int.Parse(d.Match.Groups[1].Value), d.Dump)).ToList();

    [SkippableFact]
    public async Task A_thousand_recipients_with_substitutions_are_delivered_to_smtp_sink_each_as_rendered()
    {
        var (sink, map) = await SinkAsync("example.test");
        await using var _ = sink;
        await using var azurite = await Azurite.LeaseAsync();
        var port = TestEnvironment.FreeTcpPort();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:InjectionPort"] = port.ToString(), ["Ingress:InjectionTokensFile"] = await TokensFileAsync(), ["Ingress:InjectionPlainHttp"] = "true",
            ["Mta:TransportMapFile"] = map,
        });

        var answer = await PostAsync(port, Request(1000, "example.test"));
        Assert.True(answer.Status == 202, answer.Body.ToString());
        var ids = answer.QueueIds;
        Assert.Equal(1000, ids.Distinct().Count());
        Assert.All(ids, id => Assert.Matches("^[0-9A-F]{20}$", id));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(Delivered(sink).Count >= 1000), DeliveryTimeout),
            $"{Delivered(sink).Count} of 1000 messages reached smtp-sink");
        var delivered = Delivered(sink);
        Assert.Equal(Enumerable.Range(0, 1000), delivered.Select(d => d.N).Order()); // each once
        foreach (var (n, dump) in delivered)
        {
            Assert.Contains("X-Mail-Args: <bounces@example.org>", dump);
            Assert.Contains($"Subject: Number {n}\n", dump);
            Assert.Contains($"To: User {n} <user{n}@example.test>\n", dump);
            Assert.Contains($"Your number is {n}.", dump);
            Assert.Contains("X-Campaign: dec-2026\n", dump);
            Assert.Contains("filename=terms.txt", dump);
            Assert.Contains("The terms, unchanged.", dump);
            Assert.Matches($"(?im)^Message-ID: <{ids[n]}@example.org>$", dump); // the n-th message is the n-th recipient's
            Assert.Contains("with HTTP", dump);
        }
        // The request's DSN options and tags reached delivery: NOTIFY on the next hop's RCPT, tags in the log line.
        Assert.Contains("NOTIFY=FAILURE,DELAY", delivered[0].Dump);
        Assert.Contains(mta.Log.Lines, l => l.Contains("tags=campaign:dec-2026;tenant:acme, status=sent"));
    }

    [SkippableFact]
    public async Task A_storage_outage_mid_request_gets_503_and_the_retry_with_its_key_delivers_each_message_once()
    {
        var (sink, map) = await SinkAsync("example.test");
        await using var _ = sink;
        await using var azurite = await Azurite.LeaseAsync();
        // The ingress reaches the queue service through a relay that goes down after five queue writes.
        await using var relay = new OutageRelay(azurite.QueuePort, "201 Created");
        var port = TestEnvironment.FreeTcpPort();
        var settings = new Dictionary<string, string?>
        {
            ["Ingress:InjectionPort"] = port.ToString(), ["Ingress:InjectionTokensFile"] = await TokensFileAsync(), ["Ingress:InjectionPlainHttp"] = "true",
            ["Mta:TransportMapFile"] = map,
        };
        await using var ingress = await MtaSystem.StartAsync(
            Azurite.ConnectionStringFor(azurite.BlobPort, relay.Port, azurite.TablePort, azurite.Account), settings, functions: false);

        // The ingress creates its queues as it starts: the outage is armed once they all exist, so it counts mail only.
        var service = new Azure.Storage.Queues.QueueServiceClient(azurite.ConnectionString);
        var queues = Mta.Mail.Queues.QueueNames.All.Count * 2;
        Assert.True(await TestEnvironment.EventuallyAsync(async () => (await service.GetQueuesAsync().ToListAsync()).Count == queues, TimeSpan.FromSeconds(30)));
        var request = Request(600, "example.test");
        relay.Arm(passes: 5);
        var first = await PostAsync(port, request, key: "order-7731");
        Assert.True(first.Status == 503, first.Body.ToString());
        Assert.True(relay.IsDown);
        var queuedFirst = first.QueueIds;
        var record = (await new TableClient(azurite.ConnectionString, InjectionLedger.TableName).QueryAsync<TableEntity>().ToListAsync()).Single();
        var checkpoint = record.GetInt32("Queued")!.Value;
        Assert.NotEmpty(queuedFirst);
        relay.Restore();
        var retry = await PostAsync(port, request, key: "order-7731");
        Assert.True(retry.Status == 202, retry.Body.ToString());
        Assert.Equal(600, retry.QueueIds.Distinct().Count());
        // The record holds what is known queued from the first message on (32 run at once, so that run may be empty):
        // the retry runs on from there. The writes whose replies were lost are on the queue too, unknown to the
        // ingress: the retry makes twins of them.
        Assert.Equal(retry.QueueIds.TakeWhile(queuedFirst.Contains).Count(), checkpoint);
        Assert.Empty(queuedFirst.Except(retry.QueueIds)); // the same ids: what was queued kept its name
        var again = await PostAsync(port, request, key: "order-7731");
        Assert.Equal((202, true), (again.Status, again.Replayed));
        Assert.Equal(retry.QueueIds, again.QueueIds);

        // Delivery starts only now, with twins and originals on the queue together: the claims decide.
        await using var functions = await MtaSystem.StartAsync(azurite.ConnectionString, settings, ingress: false);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(Delivered(sink).Select(d => d.N).Distinct().Count() >= 600), DeliveryTimeout),
            $"{Delivered(sink).Select(d => d.N).Distinct().Count()} of 600 recipients reached smtp-sink");
        await Task.Delay(TimeSpan.FromSeconds(3)); // a twin delivered late would show here
        var counts = Delivered(sink).GroupBy(d => d.N).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(counts.Count == 0, "delivered twice: " + string.Join(", ", counts));
        Assert.Contains(functions.Log.Lines, l => l.Contains("is claimed by a twin") || l.Contains("was finished before"));
    }
}

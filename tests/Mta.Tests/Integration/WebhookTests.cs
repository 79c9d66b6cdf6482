using System.Text.Json;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Events (issue #23): each recipient's outcome reaches the sender's webhook — a Python <c>http.server</c> that fails,
/// then stalls past the timeout, then recovers — signed, at least once, and once per outcome when deduplicated by id.
/// </summary>
[RunsLong(30)]
public sealed class WebhookTests
{
    private const string Secret = "webhook-secret-5f2a9c1e7b";

    /// <summary>
    /// The receiver: checks each POST's signature (X-Mta-Signature: t=..,v1=hex HMAC-SHA256 of "t.body"), answers 500 to the
    /// first, stalls 12 s on the second (the stage gives up after 10), then 200; writes one line per event taken, and a
    /// line per failure, to the log named on its command line.
    /// </summary>
    private const string Receiver = """
        import hashlib, hmac, http.server, json, sys, threading, time
        port, secret, log = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
        seen, lock = [0], threading.Lock()
        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                parts = dict(p.split("=", 1) for p in self.headers["X-Mta-Signature"].split(","))
                good = hmac.compare_digest(parts["v1"], hmac.new(secret, (parts["t"] + ".").encode() + body, hashlib.sha256).hexdigest())
                with lock:  # posts come in side by side: each takes its own number
                    seen[0] += 1
                    n = seen[0]
                    with open(log, "a") as f:
                        if not good:
                            f.write("BAD-SIGNATURE\n")
                        elif n == 1:
                            f.write("FAILED 500\n")
                        elif n == 2:
                            f.write("STALLED\n")
                        else:
                            for event in json.loads(body):
                                f.write(json.dumps(event) + "\n")
                if n == 2:
                    time.sleep(12)
                self.send_response(500 if n == 1 or not good else 200)
                self.end_headers()
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
        """;

    [SkippableFact]
    public async Task Each_outcome_reaches_the_webhook_signed_after_it_failed_and_stalled_and_once_by_id()
    {
        var python = TestEnvironment.RequireTool("python3");
        await using var good = await SmtpSink.StartAsync();
        await using var refusing = await SmtpSink.StartAsync("-f", "RCPT"); // every RCPT: 5xx
        var folder = TestEnvironment.TempFolder("webhook");
        var (script, log, secret, hooks, map) = (Path.Combine(folder, "hook.py"), Path.Combine(folder, "events.log"), Path.Combine(folder, "secret"),
            Path.Combine(folder, "webhooks"), Path.Combine(folder, "transport"));
        await File.WriteAllTextAsync(script, Receiver);
        await File.WriteAllTextAsync(secret, Secret + "\n");
        var port = TestEnvironment.FreeTcpPort();
        await File.WriteAllTextAsync(hooks, $"# every tenant's events to the one receiver\n* http://127.0.0.1:{port}/events {secret}\n");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{good.Port}\nbad.test smtp:[127.0.0.1]:{refusing.Port}\n");
        await using var receiver = new PeerProcess(python, [script, port.ToString(), Secret, log]);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(10), receiver.Process);
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:Events"] = "true", ["Mta:WebhooksFile"] = hooks, ["Mta:TransportMapFile"] = map,
            // A failed post comes back after a second (production: host.json's backoff).
            ["AzureFunctionsJobHost:extensions:queues:visibilityTimeout"] = "00:00:01",
        });

        var token = Guid.NewGuid().ToString("N");
        var message = TestMail.Message("sender@localhost", "a@example.test", token);
        message.Cc.Add(MimeKit.MailboxAddress.Parse("b@bad.test"));
        await TestMail.SendAsync(mta.SmtpPort, message);

        List<JsonElement> Events() => File.Exists(log)
            ? File.ReadAllLines(log).Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList() : [];
        bool Has(string type, string recipient) => Events().Any(e => e.GetProperty("type").GetString() == type && e.GetProperty("recipient").GetString() == recipient);
        // Posts that failed come back later, so the outcomes may arrive in any order.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(Has("Delivery", "a@example.test") && Has("Bounce", "b@bad.test")
            && Has("Reception", "a@example.test") && Has("Reception", "b@bad.test")),
            TimeSpan.FromSeconds(90)), "events not received:\n" + (File.Exists(log) ? File.ReadAllText(log) : "(none)") + "\n" + receiver.Output);

        var lines = File.ReadAllLines(log);
        Assert.DoesNotContain("BAD-SIGNATURE", lines);
        Assert.Contains("FAILED 500", lines);
        Assert.Contains("STALLED", lines);
        var delivered = Events().First(e => e.GetProperty("type").GetString() == "Delivery" && e.GetProperty("recipient").GetString() == "a@example.test");
        Assert.Equal("sender@localhost", delivered.GetProperty("sender").GetString());
        Assert.Equal(1, delivered.GetProperty("attempt").GetInt32());
        Assert.StartsWith("2.", delivered.GetProperty("enhanced_status").GetString());
        var bounced = Events().First(e => e.GetProperty("type").GetString() == "Bounce" && e.GetProperty("recipient").GetString() == "b@bad.test");
        Assert.StartsWith("5.", bounced.GetProperty("enhanced_status").GetString());
        Assert.False(string.IsNullOrEmpty(bounced.GetProperty("category").GetString()));
        Assert.Equal(delivered.GetProperty("queue_id").GetString(), bounced.GetProperty("queue_id").GetString());
        // At least once: a retried post may repeat events; by id, each outcome is there once.
        var outcomes = Events().Where(e => e.GetProperty("queue_id").GetString() == delivered.GetProperty("queue_id").GetString())
            .GroupBy(e => e.GetProperty("id").GetString()).ToList();
        // Reception of each recipient, then a@'s Delivery and b@'s Bounce
        Assert.True(outcomes.Count == 4, string.Join("\n", outcomes.Select(g => g.First().ToString())));
    }

    [SkippableFact]
    public async Task Replies_of_every_class_from_postfix_become_their_events_with_status_and_category()
    {
        await using var postfix = await PostfixServer.StartAsync(new Dictionary<string, string>
        {
            ["gone@example.test"] = "550 5.1.1 No such user", ["busy@example.test"] = "452 4.2.2 Mailbox full",
            ["slow@example.test"] = "421 4.7.0 Too many connections, try again later",
        });
        var map = Path.Combine(TestEnvironment.TempFolder("webhook"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{postfix.Port}\n");
        await using var azurite = await Azurite.LeaseAsync();
        // Every function but Events: the events stay on their queue, to be read here.
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:Events"] = "true", ["Mta:TransportMapFile"] = map,
        }.Concat(MtaSystem.AllButEvents).ToDictionary());
        var message = TestMail.Message("sender@localhost", "ok@example.test", "classes");
        message.Cc.Add(MimeKit.MailboxAddress.Parse("gone@example.test"));
        message.Cc.Add(MimeKit.MailboxAddress.Parse("busy@example.test"));
        await TestMail.SendAsync(mta.SmtpPort, message);
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "slow@example.test", "421")); // 421 ends the session: alone

        string[] expected = ["Delivery ok@", "Bounce gone@", "TransientFailure busy@", "TransientFailure slow@"];
        List<Mta.Mail.Events.MailEvent> outcomes = [];
        Assert.True(await TestEnvironment.EventuallyAsync(async () =>
        {
            // The recipients sent to: gone@'s report to sender@localhost is delivered too, with an event of its own, at a
            // time of its own (before or after the others).
            outcomes = (await QueuePeek.EventsAsync(azurite.ConnectionString))
                .Where(e => e.Type != "Reception" && e.Recipient.EndsWith("@example.test", StringComparison.Ordinal)).ToList();
            return outcomes.Count >= expected.Length;
        }, TimeSpan.FromSeconds(60)), string.Join('\n', mta.Log.Lines));
        Assert.Equal(expected.Order(), outcomes.Select(e => $"{e.Type} {e.Recipient.Split('@')[0]}@").Order());
        string Of(string who) => outcomes.Single(e => e.Recipient == who + "@example.test") is var e ? $"{e.EnhancedStatus} {e.Category} {e.Attempt}" : "";
        Assert.Equal("5.1.1 invalid_recipient 1", Of("gone"));
        Assert.Equal("4.2.2 mailbox_full 1", Of("busy"));
        Assert.Equal("4.7.0 rate_limited 1", Of("slow"));
        Assert.StartsWith("2.", Of("ok"));
        Assert.Contains("Mailbox full", outcomes.Single(e => e.Recipient == "busy@example.test").Reply);
        Assert.Equal(4, (await QueuePeek.EventsAsync(azurite.ConnectionString)).Count(e => e.Type == "Reception"));
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Azure.Storage.Queues;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;
using Xunit.Abstractions;

namespace Mta.Tests.Integration;

/// <summary>
/// A stream of messages through the whole system — the ingress, the functions host and its worker each a process of its own,
/// Azurite persisting to disk, dnsmasq for the MX record, smtp-sink receiving — while the parts are killed and taken
/// away. Every message a client got a 250 for must reach the sink; what arrives twice is counted and explained.
/// </summary>
// Every part is a process of its own (the images' ReadyToRun publish), so nothing here is shared with the tests beside it:
// it runs among them, and its waits (a part away for seconds) overlap their work.
[RunsLong(39)]
public sealed class FaultInjectionTests(ITestOutputHelper output)
{
    private const string Domain = "example.test";

    /// <summary>
    /// Kills the ingress in the middle of DATA and between its queue write and the 250, kills a functions worker process
    /// under its host, takes the receiving server and DNS away for a while. About a minute.
    /// </summary>
    [SkippableFact]
    public Task Nothing_acknowledged_is_lost_when_the_ingress_receiver_and_dns_fail() =>
        RunAsync(messages: 1200, everything: false, TimeSpan.FromMinutes(4));

    /// <summary>
    /// The same, and the functions host (cleanup and delivery) killed twice in the middle of its work, and Azurite
    /// restarted. What a killed worker had taken from a queue — or a live one whose work failed while storage was
    /// away, since the trigger could not shorten the message's invisibility then either — comes back when the queue
    /// trigger's 10-minute receive visibility ends, so this runs about 11 minutes: not part of <c>make test</c>;
    /// <c>make faults</c> runs it.
    /// </summary>
    [SkippableFact, Trait("Category", "Long")]
    public Task Nothing_acknowledged_is_lost_when_workers_die_and_storage_restarts_too() =>
        RunAsync(messages: 4000, everything: true, TimeSpan.FromMinutes(16));

    /// <summary>What the clients saw for one message.</summary>
    private sealed class Sent
    {
        public int Attempts;
        public bool Accepted;
        public string? Refused;
    }

    private async Task RunAsync(int messages, bool everything, TimeSpan deadline)
    {
        TestEnvironment.RequireTool("smtp-sink");
        TestEnvironment.RequireTool("dnsmasq");
        var clock = Stopwatch.StartNew();
        var faults = new List<string>();
        void Fault(string what)
        {
            lock (faults) faults.Add($"{clock.Elapsed.TotalSeconds,6:0.0} s  {what}");
        }

        var ports = TestEnvironment.FreeTcpPorts(3);
        var location = TestEnvironment.TempFolder("azurite-data");
        var azurite = await Azurite.StartAsync(ports[0], ports[1], ports[2], location: location);
        await using var queueProxy = new TcpProxy(azurite.QueuePort);
        var sinkPort = TestEnvironment.FreeTcpPort();
        var sinks = new List<SmtpSink> { await SmtpSink.StartOnAsync(sinkPort) };
        var dnsPort = TestEnvironment.FreeUdpPort();
        string[] records = [$"--mx-host={Domain},mx1.{Domain},10", $"--host-record=mx1.{Domain},127.0.0.1"];
        var dns = await Dnsmasq.StartOnAsync(dnsPort, records);
        var smtpPort = TestEnvironment.FreeTcpPort();

        var common = new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = azurite.ConnectionString,
            ["Mta:MyHostname"] = "mta.test",
            ["Mta:DataDirectory"] = TestEnvironment.TempFolder("data"),
            ["Mta:DnsServers:0"] = $"127.0.0.1:{dnsPort}",
            ["Mta:SmtpPort"] = sinkPort.ToString(),
            // Deferred mail comes back within seconds rather than Postfix's five minutes.
            ["Mta:MinimalBackoffSeconds"] = "1",
            ["Mta:MaximalBackoffSeconds"] = "4",
            ["Mta:MetricsPort"] = "0",
            ["Mta:DeliverToInternalNetworks"] = "true", // the MX record points to loopback
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = "00:00:00.500",
        };
        // The ingress reaches the queue service through the proxy, which can kill it right after a queue write.
        var ingressSettings = new Dictionary<string, string?>(common)
        {
            ["AzureWebJobsStorage"] = Azurite.ConnectionStringFor(azurite.BlobPort, queueProxy.Port, azurite.TablePort),
            ["Ingress:HealthPort"] = "0",
        };
        var ingress = await MtaProcess.StartIngressAsync(smtpPort, ingressSettings);
        var app = await PublishedApps.FunctionsAppAsync();
        var workers = new[] { MtaProcess.StartFunctions(common, app), MtaProcess.StartFunctions(common, app) };
        var sent = new ConcurrentDictionary<string, Sent>();
        try
        {
            // The senders: like a real client, each message is sent again until a 250 comes, whatever went wrong.
            var next = -1;
            var accepted = 0;
            async Task SenderAsync()
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < messages)
                {
                    var token = $"fault-{i:D5}";
                    if (await SendAsync(smtpPort, token, i % 25 == 0 ? 60_000 : 1_000, sent, clock, deadline)) Interlocked.Increment(ref accepted);
                }
            }
            var senders = Enumerable.Range(0, 8).Select(_ => Task.Run(SenderAsync)).ToArray();
            async Task AtAsync(double share) =>
                await TestEnvironment.EventuallyAsync(() => Task.FromResult(Volatile.Read(ref accepted) >= share * messages), deadline);

            async Task RestartIngressAsync()
            {
                await Task.Delay(500);
                ingress = await MtaProcess.StartIngressAsync(smtpPort, ingressSettings);
            }

            // 1. Killed in the middle of DATA: half a message sent, no end of data; the client sends it again later.
            await AtAsync(0.10);
            {
                var (raw, greeting) = await RawSmtpClient.ConnectAsync(smtpPort);
                await using var _ = raw;
                Assert.StartsWith("220", greeting);
                Assert.StartsWith("354", await raw.StartDataAsync("load@sender.test", $"user@{Domain}"));
                var half = Message("fault-middata", 60_000).ToString().ReplaceLineEndings("\r\n");
                await raw.WriteAsync(half[..(half.Length / 2)]);
                await Task.Delay(200);
                await ingress.KillAsync();
                Fault("ingress killed in the middle of DATA");
            }
            await RestartIngressAsync();
            var resend = SendAsync(smtpPort, "fault-middata", 60_000, sent, clock, deadline);

            // 2. Killed right after its queue write went through, before (or just as) the 250 goes out.
            foreach (var share in new[] { 0.20, 0.30 })
            {
                await AtAsync(share);
                await queueProxy.AfterReply("201 Created", ingress.KillAsync).WaitAsync(TimeSpan.FromSeconds(30));
                Fault("ingress killed right after a queue write");
                await RestartIngressAsync();
            }

            // 3. Workers killed in the middle of their work (cleanup and delivery run in each functions host).
            if (everything)
            {
                foreach (var (share, w) in new[] { (0.35, 0), (0.50, 1) })
                {
                    await AtAsync(share);
                    await workers[w].KillAsync();
                    Fault($"functions host {w} killed");
                    await Task.Delay(1000);
                    workers[w] = MtaProcess.StartFunctions(common, app);
                }
            }

            // 3b. A functions worker process killed under its host, which fails its invocations in flight (their messages come
            // back after host.json's visibilityTimeout) and starts another worker.
            await AtAsync(0.40);
            var worker = workers[0].ChildProcessIds().Single();
            Process.GetProcessById(worker).Kill();
            Fault($"functions worker {worker} killed (host 0 stays)");
            Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
                workers[0].ChildProcessIds() is [var next] && next != worker), TimeSpan.FromSeconds(30)), "no new worker:\n" + workers[0].Output);
            Fault("functions worker restarted by its host");

            // 4. Storage restarted (its data on disk), as an upgrade or a moved pod would.
            if (everything)
            {
                await AtAsync(0.45);
                await azurite.StopAsync();
                Fault("Azurite stopped");
                await Task.Delay(3000);
                azurite = await Azurite.StartAsync(ports[0], ports[1], ports[2], location: location);
                Fault("Azurite back");
            }

            // 5. The receiving server away for a while.
            await AtAsync(0.60);
            await sinks[^1].DisposeAsync();
            Fault("smtp-sink gone");
            await Task.Delay(3000);
            sinks.Add(await SmtpSink.StartOnAsync(sinkPort));
            Fault("smtp-sink back");

            // 6. DNS away for a while.
            await AtAsync(0.75);
            await dns.DisposeAsync();
            Fault("dnsmasq gone");
            await Task.Delay(3000);
            dns = await Dnsmasq.StartOnAsync(dnsPort, records);
            Fault("dnsmasq back");

            await Task.WhenAll([.. senders, resend]).WaitAsync(deadline - clock.Elapsed);
            foreach (var w in workers) Assert.True(w.Running, "a functions host stopped by itself:\n" + w.Output);
            var acceptedTokens = sent.Where(kv => kv.Value.Accepted).Select(kv => kv.Key).ToHashSet();
            await TestEnvironment.EventuallyAsync(() => Task.FromResult(acceptedTokens.All(Delivered(sinks).ContainsKey)), deadline - clock.Elapsed);
            await Task.Delay(2000); // late duplicates, if any, would land now

            var delivered = Delivered(sinks);
            var lost = acceptedTokens.Where(t => !delivered.ContainsKey(t)).Order().ToList();
            var twice = delivered.Where(kv => kv.Value > 1).ToList();
            var resent = twice.Where(kv => sent.TryGetValue(kv.Key, out var s) && s.Attempts > 1).Sum(kv => kv.Value - 1);
            var system = twice.Sum(kv => kv.Value - 1) - resent;
            var depths = await QueueDepthsAsync(azurite.ConnectionString);
            var poison = depths.Where(d => d.Key.EndsWith("-poison", StringComparison.Ordinal)).ToDictionary();

            foreach (var f in faults) output.WriteLine(f);
            output.WriteLine($"messages {messages + 1}, acknowledged with 250: {acceptedTokens.Count}, refused for good: {sent.Count(kv => kv.Value.Refused is not null)}, " +
                $"attempts: {sent.Sum(kv => kv.Value.Attempts)}");
            output.WriteLine($"delivered: {delivered.Count} distinct, {delivered.Values.Sum()} in all; lost: {lost.Count}; " +
                $"duplicates: {resent} after a client sent again (no 250 seen), {system} from the system");
            output.WriteLine($"queues (invisible messages included): {string.Join(", ", depths.Select(p => $"{p.Key} {p.Value}"))}; took {clock.Elapsed.TotalSeconds:0} s");

            Assert.True(lost.Count == 0, $"acknowledged but never delivered: {string.Join(" ", lost.Take(20))}");
            Assert.Equal(1, delivered.GetValueOrDefault("fault-middata")); // the half message never, the whole once
            Assert.All(poison, p => Assert.Equal(0, p.Value));
            Assert.True(system <= Math.Max(2, messages / 100), $"{system} duplicates from the system");
            Assert.Equal(messages + 1, acceptedTokens.Count); // every message got through in the end
        }
        finally
        {
            await ingress.DisposeAsync();
            foreach (var w in workers) await w.DisposeAsync();
            foreach (var s in sinks) await s.DisposeAsync();
            await dns.DisposeAsync();
            await azurite.DisposeAsync();
        }
    }

    private static MimeMessage Message(string token, int size)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("load@sender.test"));
        message.To.Add(MailboxAddress.Parse($"user@{Domain}"));
        message.Subject = token;
        var line = new string('x', 76);
        message.Body = new TextPart("plain") { Text = string.Concat(Enumerable.Repeat(line + "\r\n", size / 78 + 1)) };
        return message;
    }

    /// <summary>Sends until a 250 (true) or a 5xx (false), reconnecting after any failure.</summary>
    private static async Task<bool> SendAsync(int port, string token, int size, ConcurrentDictionary<string, Sent> sent, Stopwatch clock, TimeSpan deadline)
    {
        var state = sent.GetOrAdd(token, _ => new Sent());
        var message = Message(token, size);
        while (clock.Elapsed < deadline)
        {
            Interlocked.Increment(ref state.Attempts);
            try
            {
                using var client = new SmtpClient { Timeout = 30_000 };
                await client.ConnectAsync("127.0.0.1", port, SecureSocketOptions.None);
                await client.SendAsync(message);
                state.Accepted = true;
                try { await client.DisconnectAsync(true); } catch (Exception) { /* the 250 is what counts */ }
                return true;
            }
            catch (SmtpCommandException e) when ((int)e.StatusCode >= 500)
            {
                state.Refused = $"{(int)e.StatusCode} {e.Message}";
                return false;
            }
            catch (Exception)
            {
                await Task.Delay(200); // 4xx, refused connection, reset: try again
            }
        }
        return false;
    }

    /// <summary>Deliveries per token, from every sink's dumps (the Subject line is the token).</summary>
    private static Dictionary<string, int> Delivered(IEnumerable<SmtpSink> sinks)
    {
        var counts = new Dictionary<string, int>();
        foreach (var file in sinks.SelectMany(s => Directory.GetFiles(s.DumpFolder)))
        {
            string? subject;
            try { subject = File.ReadLines(file).Take(40).FirstOrDefault(l => l.StartsWith("Subject: fault-", StringComparison.Ordinal)); }
            catch (IOException) { continue; } // still being written
            if (subject is null) continue;
            var token = subject["Subject: ".Length..].Trim();
            counts[token] = counts.GetValueOrDefault(token) + 1;
        }
        return counts;
    }

    /// <summary>Messages in every queue, invisible ones (taken by a worker, or waiting for a retry) included.</summary>
    private static async Task<SortedDictionary<string, int>> QueueDepthsAsync(string storage)
    {
        var service = new QueueServiceClient(storage, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });
        var counts = new SortedDictionary<string, int>();
        await foreach (var queue in service.GetQueuesAsync())
            counts[queue.Name] = (await service.GetQueueClient(queue.Name).GetPropertiesAsync()).Value.ApproximateMessagesCount;
        return counts;
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Azure.Storage.Queues;
using Microsoft.Extensions.Configuration;
using Mta.Ingress;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// mtactl, the operator's tool, run as a process against Azurite with a populated queue: deferred, held and poison
/// mail; every command's output checked; configuration checks with broken files.
/// </summary>
[RunsLong(45)]
public sealed class CliTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // The tool as the functions image ships it (/opt/mtactl), run from its own folder with its own dependencies.
    private static async Task<string> MtactlDllAsync()
        => Path.Combine((await PublishedApps.AsInDockerfileAsync("functions.Dockerfile"))["/opt/mtactl"], "mtactl.dll");

    private static Task<(int Exit, string Out, string Err)> MtactlAsync(string? storage, params string[] args) => MtactlAsync(storage, null, args);

    private static async Task<(int Exit, string Out, string Err)> MtactlAsync(string? storage, IDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(await MtactlDllAsync());
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("AzureWebJobsStorage");
        if (storage is not null) psi.Environment["AzureWebJobsStorage"] = storage;
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) psi.Environment[key] = value;
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COLUMNS"] = "200";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return (p.ExitCode, await stdout, await stderr);
    }

    // Waiting is polled in the test process, through the library mtactl uses: a process start per poll was most of this
    // class's time. What is asserted is what mtactl prints.
    private static Task<bool> EventuallyListedAsync(MtaSystem mta, Func<IReadOnlyList<Mta.Mail.Administration.QueueEntry>, bool> condition)
    {
        var administration = Microsoft.Extensions.DependencyInjection.ActivatorUtilities.CreateInstance<Mta.Mail.Administration.QueueAdministration>(mta.MailServices);
        return TestEnvironment.EventuallyAsync(async () => condition(await administration.ListAsync()), Timeout);
    }

    private static async Task<JsonElement[]> ListAsync(string storage)
    {
        var (exit, output, error) = await MtactlAsync(storage, "queue", "list", "--json");
        Assert.True(exit == 0, error);
        return JsonDocument.Parse(output).RootElement.EnumerateArray().ToArray();
    }

    [SkippableFact]
    public async Task Lists_shows_retries_holds_releases_and_deletes_queued_mail()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await StartWithSlowRouteAndHoldCheckAsync(azurite.ConnectionString, sink.Port);
        var storage = azurite.ConnectionString;

        Assert.Equal("Mail queue is empty", (await MtactlAsync(storage, "queue", "list")).Out.Trim());
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "later@slow.test", "first"));
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("b@sender.test", "later@slow.test", "second"));
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("c@sender.test", "u@example.test", "hold me"));
        Assert.True(await EventuallyListedAsync(mta, list => list.Select(e => e.State).Order().SequenceEqual(["deferred", "deferred", "hold"])), "not all waiting");

        var (deferred, held) = await ListedAsync(storage);
        await TableAndShowAsync(storage, deferred[0]);
        await RetryAsync(mta, storage, deferred[0].GetProperty("id").GetString()!);

        // Held mail released goes out now.
        var release = await MtactlAsync(storage, "queue", "release", held.GetProperty("queueId").GetString()!);
        Assert.Equal(0, release.Exit);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains("hold me"))), Timeout), "release did not deliver");

        await HoldThenDeleteAsync(storage, deferred[1].GetProperty("id").GetString()!);
        var missing = await MtactlAsync(storage, "queue", "show", "NOSUCHID");
        Assert.Equal((1, "mtactl: no such deferred or held mail: NOSUCHID"), (missing.Exit, missing.Err.Trim()));
    }

    [SkippableFact]
    public async Task Bouncing_waiting_mail_reports_it_to_its_sender_and_events_record_what_the_operator_did()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var storage = azurite.ConnectionString;
        // Every function but Events: the events stay on their queue, to be read here.
        await using var mta = await StartWithSlowRouteAndHoldCheckAsync(storage, sink.Port,
            new Dictionary<string, string?> { ["Mta:Events"] = "true" }.Concat(MtaSystem.AllButEvents).ToDictionary());
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@example.test", "later@slow.test", "first"));
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("b@example.test", "later@slow.test", "second"));
        Assert.True(await EventuallyListedAsync(mta, list => list.Count(e => e.State == "deferred") == 2), "not deferred");
        var deferred = await ListAsync(storage);
        var (bounced, deleted) = (deferred.Single(e => e.GetProperty("sender").GetString() == "a@example.test"), deferred.Single(e => e.GetProperty("sender").GetString() == "b@example.test"));
        var events = new Dictionary<string, string> { ["Mta__Events"] = "true" };

        var bounce = await MtactlAsync(storage, events, "queue", "bounce", bounced.GetProperty("queueId").GetString()!, "--reason", "stopped at the customer's request");
        Assert.Equal((0, $"{bounced.GetProperty("id").GetString()}: returned to the sender"), (bounce.Exit, bounce.Out.Trim()));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains("stopped at the customer's request"))), Timeout), "no report");
        var report = sink.Dumps().Single(d => d.Contains("stopped at the customer's request"));
        Assert.Contains("Final-Recipient: rfc822; later@slow.test", report);
        Assert.Contains("Status: 5.0.0", report);
        Assert.Contains("To: a@example.test", report);
        Assert.Equal(0, (await MtactlAsync(storage, events, "queue", "delete", deleted.GetProperty("id").GetString()!)).Exit);
        Assert.Empty(await ListAsync(storage));
        Assert.Equal(1, (await MtactlAsync(storage, "queue", "bounce", "NOSUCHID")).Exit);

        var admin = (await QueuePeek.EventsAsync(storage)).Where(e => e.Type == "AdminAction").ToList();
        Assert.Equal(2, admin.Count);
        var first = admin.Single(e => e.Sender == "a@example.test");
        Assert.Equal(("later@slow.test", "bounced: stopped at the customer's request", "5.0.0"), (first.Recipient, first.Reply, first.EnhancedStatus));
        Assert.Equal(bounced.GetProperty("queueId").GetString(), first.QueueId);
        Assert.Equal("deleted: deleted by the operator", admin.Single(e => e.Sender == "b@example.test").Reply);
        Assert.DoesNotContain(sink.Dumps(), d => d.Contains("second") && d.Contains("Final-Recipient")); // deleting reports nothing
    }

    // Mail to slow.test meets a closed port (deferred); a "hold me" subject is held by a header check.
    private static async Task<MtaSystem> StartWithSlowRouteAndHoldCheckAsync(string storage, int sinkPort, IDictionary<string, string?>? more = null)
    {
        var folder = TestEnvironment.TempFolder("cli");
        var map = Path.Combine(folder, "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sinkPort}\nslow.test smtp:[127.0.0.1]:{TestEnvironment.FreeTcpPort()}\n");
        var checks = Path.Combine(folder, "header_checks");
        await File.WriteAllTextAsync(checks, "/^Subject: hold me/ HOLD looks odd\n");
        return await MtaSystem.StartAsync(storage, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = map, ["Mta:HeaderChecksFile"] = checks, ["Mta:MinimalBackoffSeconds"] = "600", ["Mta:MaximalBackoffSeconds"] = "600",
        }.Concat(more ?? new Dictionary<string, string?>()).ToDictionary());
    }

    private static async Task<(JsonElement[] Deferred, JsonElement Held)> ListedAsync(string storage)
    {
        var entries = await ListAsync(storage);
        var deferred = entries.Where(e => e.GetProperty("state").GetString() == "deferred").ToArray();
        var held = Assert.Single(entries, e => e.GetProperty("state").GetString() == "hold");
        Assert.Equal(2, deferred.Length);
        Assert.Equal("c@sender.test", held.GetProperty("sender").GetString());
        Assert.Equal("looks odd", held.GetProperty("reason").GetString());
        Assert.True(held.GetProperty("size").GetInt64() > 100, "the size as received");
        Assert.Contains("later@slow.test", deferred[0].GetProperty("recipients").EnumerateArray().Select(r => r.GetString()));
        return (deferred, held);
    }

    // The table: one row per job, with its state and the reason it waits; then one job in full.
    private static async Task TableAndShowAsync(string storage, JsonElement first)
    {
        var table = await MtactlAsync(storage, "queue", "list", "--state", "deferred");
        Assert.Equal(0, table.Exit);
        Assert.Contains("a@sender.test", table.Out);
        Assert.Contains("b@sender.test", table.Out);
        Assert.DoesNotContain("c@sender.test", table.Out);
        Assert.Contains("-- 2 job(s)", table.Out);

        var firstId = first.GetProperty("id").GetString()!;
        var show = await MtactlAsync(storage, "queue", "show", firstId);
        Assert.Equal(0, show.Exit);
        Assert.Contains($"job:        {firstId} (deferred, 1 attempt(s))", show.Out);
        Assert.Matches(@"reason:\s+.*(refused|connect)", show.Out);
        var subject = first.GetProperty("sender").GetString() == "a@sender.test" ? "first" : "second";
        Assert.Contains("Subject: " + subject, show.Out);
    }

    // postqueue -i: due now; the worker tries again at once (still refused), so the attempt count goes up.
    private static async Task RetryAsync(MtaSystem mta, string storage, string id)
    {
        var retry = await MtactlAsync(storage, "queue", "retry", id);
        Assert.Equal((0, $"{id}: due now"), (retry.Exit, retry.Out.Trim()));
        Assert.True(await EventuallyListedAsync(mta, list => list.Any(e => e.Id == id && e.Attempt == 2)), "the retry did not happen");
        Assert.Equal(2, (await ListAsync(storage)).Single(e => e.GetProperty("id").GetString() == id).GetProperty("attempt").GetInt32());

        var again = await MtactlAsync(storage, "queue", "show", id);
        Assert.Equal(2, Regex.Matches(again.Out, @"(?m)^attempt:    \d{4}-\d\d-\d\d \d\d:\d\d:\d\d relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+: 4\.4\.1 ").Count);
    }

    // postsuper -h, then postsuper -d ALL deferred.
    private static async Task HoldThenDeleteAsync(string storage, string id)
    {
        Assert.Equal(0, (await MtactlAsync(storage, "queue", "hold", id)).Exit);
        Assert.Equal("hold", (await ListAsync(storage)).Single(e => e.GetProperty("id").GetString() == id).GetProperty("state").GetString());
        var delete = await MtactlAsync(storage, "queue", "delete", "--all-deferred");
        Assert.Equal(0, delete.Exit);
        Assert.Equal([id], (await ListAsync(storage)).Select(e => e.GetProperty("id").GetString()));
        Assert.Equal(0, (await MtactlAsync(storage, "queue", "delete", id)).Exit);
        Assert.Empty(await ListAsync(storage));
    }

    [SkippableFact]
    public async Task Poison_queues_are_counted_requeued_and_purged()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("cli"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sink.Port}\n");
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?> { ["Mta:TransportMapFile"] = map });
        var storage = azurite.ConnectionString;

        // A message that failed for an infrastructure reason, now fine, and one that is garbage.
        var poison = new QueueClient(storage, QueueNames.Incoming + "-poison", new QueueClientOptions { MessageEncoding = MailQueues.Encoding });
        await poison.CreateIfNotExistsAsync();
        var envelope = new IncomingEnvelope
        {
            Id = "P0150N0000000001", Sender = "a@sender.test", Recipients = ["u@example.test"], ClientAddress = "127.0.0.1", Helo = "client.test",
            ArrivalTime = DateTimeOffset.UtcNow, Size = 30, BlobName = "P0150N0000000001", Content = "Subject: requeued\r\n\r\nbody\r\n"u8.ToArray(),
        };
        await poison.SendMessageAsync(QueueJson.Serialize(envelope));
        var list = await MtactlAsync(storage, "queue", "poison", "list");
        Assert.Equal(0, list.Exit);
        Assert.Contains("incoming-poison: 1 message(s)", list.Out);
        Assert.Contains("delivery-poison: 0 message(s)", list.Out);

        var requeue = await MtactlAsync(storage, "queue", "poison", "requeue", "--queue", "incoming");
        Assert.Equal((0, "incoming-poison: 1 message(s) moved back to incoming"), (requeue.Exit, requeue.Out.Trim()));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains("requeued"))), Timeout), "not delivered");

        await poison.SendMessageAsync("not json at all");
        var purge = await MtactlAsync(storage, "queue", "poison", "purge", "--queue", "incoming", "--json");
        Assert.Equal(0, purge.Exit);
        Assert.Equal(1, JsonDocument.Parse(purge.Out).RootElement.GetProperty("purged").GetInt32());

        var unknown = await MtactlAsync(storage, "queue", "poison", "purge", "--queue", "nonsense");
        Assert.Equal(1, unknown.Exit);
        Assert.Contains("unknown queue 'nonsense'", unknown.Err);
    }

    [SkippableFact]
    public async Task Purging_poison_releases_what_its_messages_held_and_a_crafted_name_releases_nothing()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var storage = azurite.ConnectionString;
        var poisoned = new PoisonedStorage(storage);
        await poisoned.PoisonIncomingAndDeliveryAsync();
        await poisoned.PoisonDeferredBounceAndCraftedAsync();

        foreach (var (queue, expected) in new[] { (QueueNames.Incoming, 2), (QueueNames.Delivery, 2), (QueueNames.Deferred, 1), (QueueNames.Bounce, 1) })
        {
            var purge = await MtactlAsync(storage, "queue", "poison", "purge", "--queue", queue);
            Assert.Equal((0, $"{queue}-poison: {expected} message(s) deleted"), (purge.Exit, purge.Out.Trim()));
        }
        Assert.False(await poisoned.ExistsAsync("spool", "IN00000000000001"));
        Assert.True(await poisoned.ExistsAsync("spool", "IN00000000000002"));
        Assert.False(await poisoned.ExistsAsync("spool", "DL00000000000001"));
        Assert.Null(await poisoned.References.OpenReferencesAsync("DL00000000000001"));
        Assert.False(await poisoned.ExistsAsync("spool", "DF00000000000001"));
        Assert.Empty(await ListAsync(storage)); // no ghost of the deferred job
        Assert.True(await poisoned.ExistsAsync("spool", "BO00000000000001"));
        Assert.Equal(["BO00000000000001.0"], await poisoned.References.OpenReferencesAsync("BO00000000000001"));
        Assert.True(await poisoned.ExistsAsync("mtaother", "keep"));
    }

    /// <summary>Poison messages on every queue, with the spool blobs and references they hold, written straight to storage.</summary>
    private sealed class PoisonedStorage
    {
        private readonly Mta.Mail.Configuration.StorageConnection _connection;
        private readonly Azure.Storage.Blobs.BlobServiceClient _blobs;
        private readonly Mta.Mail.Spool.MessageSpool _spool;
        private readonly MailQueues _queues;

        public PoisonedStorage(string storage)
        {
            _connection = TestEnvironment.Storage(storage);
            _blobs = new(storage);
            _spool = new(_connection);
            _queues = new(_connection);
            References = new(_connection);
        }

        public Mta.Mail.Spool.SpoolReferences References { get; }

        public async Task<bool> ExistsAsync(string container, string name)
            => (await _blobs.GetBlobContainerClient(container).GetBlobClient(name).ExistsAsync()).Value;

        private Task BlobAsync(string name) => _spool.WriteAsync(name, new MemoryStream("Subject: x\r\n\r\nbody\r\n"u8.ToArray()));

        private async Task PoisonAsync(string queue, string text) => await _queues.GetPoison(queue).SendMessageAsync(text);

        private static DeliveryJob Job(string id, int n, string blob, bool sole = false) => new()
        {
            MessageId = id, JobId = $"{id}.{n}", BlobName = blob, Sender = "a@sender.test", Recipients = ["u@example.test"],
            NextHop = new NextHop { Transport = Transport.Smtp, Host = "example.test", MxLookup = true }, ArrivalTime = DateTimeOffset.UtcNow, SoleHolder = sole,
        };

        public async Task PoisonIncomingAndDeliveryAsync()
        {
            await _spool.CreateIfNotExistsAsync();
            await _queues.CreateIfNotExistsAsync();
            // incoming: a spooled envelope that cleanup never got through (its blob goes), one whose jobs hold the blob (it stays).
            await BlobAsync("IN00000000000001");
            await BlobAsync("IN00000000000002");
            await References.OpenAsync("IN00000000000002", ["IN00000000000002.0"]);
            foreach (var id in new[] { "IN00000000000001", "IN00000000000002" })
                await PoisonAsync(QueueNames.Incoming, QueueJson.Serialize(new IncomingEnvelope
                {
                    Id = id, BlobName = id, Sender = "a@sender.test", Recipients = ["u@example.test"], ClientAddress = "127.0.0.1", Helo = "c.test",
                    ArrivalTime = DateTimeOffset.UtcNow, Size = 20,
                }));
            // delivery: a batch of both jobs of a message (the last holders: its blob goes).
            await BlobAsync("DL00000000000001");
            await References.OpenAsync("DL00000000000001", ["DL00000000000001.0", "DL00000000000001.1"]);
            await PoisonAsync(QueueNames.Delivery, DeliveryBatch.Join([QueueJson.Serialize(Job("DL00000000000001", 0, "DL00000000000001")),
                QueueJson.Serialize(Job("DL00000000000001", 1, "DL00000000000001"))]));
        }

        public async Task PoisonDeferredBounceAndCraftedAsync()
        {
            // deferred: a sole holder, listed as waiting.
            await BlobAsync("DF00000000000001");
            var deferred = Job("DF00000000000001", 0, "DF00000000000001", sole: true);
            var receipt = await _queues.SendAsync(QueueNames.Deferred, deferred, delay: TimeSpan.FromHours(1));
            await new Mta.Mail.Tracking.WaitingMail(_connection).PutAsync(Mta.Mail.Tracking.WaitingMail.Deferred, deferred, receipt, "4.4.1 connect",
                DateTimeOffset.UtcNow.AddHours(1));
            await _queues.Get(QueueNames.Deferred).DeleteMessageAsync(receipt.MessageId, receipt.PopReceipt); // poisoned meanwhile
            await PoisonAsync(QueueNames.Deferred, QueueJson.Serialize(deferred));
            // bounce: a report's hold on a message whose delivery job still holds it: the blob stays.
            await BlobAsync("BO00000000000001");
            await References.OpenAsync("BO00000000000001", ["cleanup:BO00000000000001.0", "BO00000000000001.0"]);
            await PoisonAsync(QueueNames.Bounce, QueueJson.Serialize(new ReportJob
            {
                MessageId = "BO00000000000001", BlobName = "BO00000000000001", Sender = "a@sender.test", ArrivalTime = DateTimeOffset.UtcNow,
                Recipients = [new ReportedRecipient("u@example.test", "5.1.1 no")], Reference = "cleanup:BO00000000000001.0",
            }));
            // Crafted: a sole holder whose blob name climbs into another container.
            var other = _blobs.GetBlobContainerClient("mtaother");
            await other.CreateIfNotExistsAsync();
            await other.GetBlobClient("keep").UploadAsync(new BinaryData("keep"));
            await PoisonAsync(QueueNames.Delivery, QueueJson.Serialize(Job("CR00000000000001", 0, "../mtaother/keep", sole: true)));
        }
    }

    [SkippableFact]
    public async Task Queue_fields_reach_the_terminal_without_control_characters()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var connection = TestEnvironment.Storage(azurite.ConnectionString);
        var queues = new MailQueues(connection);
        await queues.CreateIfNotExistsAsync();
        var job = new DeliveryJob
        {
            MessageId = "ES00000000000001", JobId = "ES00000000000001.0", BlobName = "ES00000000000001", Sender = "a\u001b[2J@sender.test",
            Recipients = ["u\r\nrecipient:  <forged@x.test>@example.test"], NextHop = new NextHop { Transport = Transport.Smtp, Host = "example.test", MxLookup = true },
            ArrivalTime = DateTimeOffset.UtcNow, History = ["450 4.2.0 \u001b]0;owned\u0007 busy"],
            Content = "Subject: \u001b[31mred\r\nX-Bell: \u0007\r\n\r\nbody\r\n"u8.ToArray(),
        };
        var receipt = await queues.SendAsync(QueueNames.Deferred, job, delay: TimeSpan.FromHours(1));
        await new Mta.Mail.Tracking.WaitingMail(connection).PutAsync(Mta.Mail.Tracking.WaitingMail.Deferred, job, receipt, "4.2.0 \u001b[2J", DateTimeOffset.UtcNow.AddHours(1));

        foreach (var args in new[] { new[] { "queue", "show", "ES00000000000001" }, ["queue", "list"] })
        {
            var (exit, output, error) = await MtactlAsync(azurite.ConnectionString, args);
            Assert.True(exit == 0, error);
            Assert.DoesNotContain(output, c => char.IsControl(c) && c is not '\n' and not '\r');
            Assert.DoesNotContain("\nrecipient:  <forged", output.Replace("\r\n", "\n"), StringComparison.Ordinal);
        }
        var show = await MtactlAsync(azurite.ConnectionString, "queue", "show", "ES00000000000001");
        Assert.Contains(@"sender:     <a\x1b[2J@sender.test>", show.Out);
        Assert.Contains(@"Subject: \x1b[31mred", show.Out); // the header, still one line per field
    }

    [SkippableFact]
    public async Task A_wrong_or_missing_connection_gets_one_line_and_an_exit_code()
    {
        var none = await MtactlAsync(null, "queue", "list");
        Assert.Equal(2, none.Exit);
        Assert.Contains("No storage connection: set AzureWebJobsStorage", none.Err);

        var refused = await MtactlAsync(Azurite.ConnectionStringFor(TestEnvironment.FreeTcpPort(), TestEnvironment.FreeTcpPort(), TestEnvironment.FreeTcpPort()),
            "queue", "list");
        Assert.Equal(3, refused.Exit);
        Assert.StartsWith("mtactl: storage unreachable", refused.Err.Trim());
        Assert.DoesNotContain("   at ", refused.Err); // no stack trace for an operator's mistake
    }

    [Fact]
    public async Task Config_check_prints_what_differs_from_the_defaults_and_reports_every_error_with_file_and_line()
    {
        var folder = TestEnvironment.TempFolder("config");
        var virtuals = Path.Combine(folder, "virtual");
        await File.WriteAllTextAsync(virtuals, "a@example.org b@example.org\n");
        var settings = Path.Combine(folder, "appsettings.json");
        await File.WriteAllTextAsync(settings, $$"""{ "AzureWebJobsStorage": "UseDevelopmentStorage=true", "Mta": { "HopCountLimit": 30, "VirtualAliasMapsFile": "{{virtuals}}" } }""");
        var good = await MtactlAsync(null, "config", "check", "--settings", settings);
        Assert.True(good.Exit == 0, good.Err);
        Assert.Contains("Mta:HopCountLimit = 30", good.Out);
        Assert.DoesNotContain("Mta:HeaderSizeLimit", good.Out);
        Assert.EndsWith("configuration OK", good.Out.Trim());

        await File.WriteAllTextAsync(virtuals, "a@example.org b@example.org\nbroken\n");
        var checks = Path.Combine(folder, "header_checks");
        await File.WriteAllTextAsync(checks, "/ok/ WARN\n/bad/ BOUNCE\n");
        var shaping = Path.Combine(folder, "shaping");
        await File.WriteAllTextAsync(shaping, "* concurrency=10\nexample.com rate=fast\n");
        await File.WriteAllTextAsync(settings, $$"""
            { "AzureWebJobsStorage": "UseDevelopmentStorage=true",
              "Mta": { "VirtualAliasMapsFile": "{{virtuals}}", "HeaderChecksFile": "{{checks}}", "TransportMapFile": "{{folder}}/missing", "TlsSecurityLevel": "maybe",
                       "ShapingFile": "{{shaping}}" } }
            """);
        var bad = await MtactlAsync(null, "config", "check", "--settings", settings);
        Assert.Equal(2, bad.Exit);
        Assert.Contains($"{virtuals}:2: expected 'key value', got 'broken'", bad.Err);
        Assert.Contains($"{checks}:2: unknown action 'BOUNCE'", bad.Err);
        Assert.Contains("Mta:TransportMapFile", bad.Err);
        Assert.Contains("unknown TLS level 'maybe'", bad.Err);
        Assert.Contains($"{shaping}:2: rate=fast is not N/s, N/min or N/h", bad.Err);
        Assert.Contains("5 error(s)", bad.Out);
        Assert.DoesNotContain("   at ", bad.Err);
    }
    [Theory]
    [InlineData("Mta", "HopCountLimit", "0", "Mta:HopCountLimit (hopcount_limit): must be a positive number, not 0")]
    [InlineData("Ingress", "BareLineEndings", "sometimes", "Ingress:BareLineEndings (smtpd_forbid_bare_newline): 'sometimes' is not reject or normalize")]
    public async Task Config_check_and_the_start_report_a_bad_setting_in_the_same_words(string section, string key, string value, string expected)
    {
        var folder = TestEnvironment.TempFolder("config");
        var settings = Path.Combine(folder, "appsettings.json");
        await File.WriteAllTextAsync(settings, $$"""{ "AzureWebJobsStorage": "UseDevelopmentStorage=true", "{{section}}": { "{{key}}": "{{value}}" } }""");
        var configuration = new ConfigurationBuilder().AddJsonFile(settings).Build();
        var mta = MtaOptionsValidator.Check(configuration);
        var finding = Assert.Single([.. mta.Findings, .. IngressOptionsValidator.Check(configuration, mta.Options).Findings],
            f => f.Severity == FindingSeverity.Error);
        Assert.Equal(expected, finding.Message);

        var check = await MtactlAsync(null, "config", "check", "--settings", settings);
        Assert.Equal(2, check.Exit);
        Assert.Equal([$"mtactl: error: {finding.Message}"], check.Err.Split('\n').Where(l => l.StartsWith("mtactl: error:")).Select(l => l.TrimEnd()));
        Assert.Contains("mtactl: warning: no Mta:LocalRecipientsFile", check.Err); // the ingress's warnings are the check's too

        var start = Assert.Throws<InvalidOperationException>(() => IngressHost.Build([], new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true", [$"{section}:{key}"] = value, ["Ingress:Port"] = "0",
        }));
        Assert.Equal(finding.Message, start.Message);
    }

    [SkippableFact]
    public async Task A_hard_bounce_suppresses_its_address_the_next_message_skips_it_and_mtactl_keeps_the_list()
    {
        await using var postfix = await PostfixServer.StartAsync(new Dictionary<string, string> { ["gone@example.test"] = "550 5.1.1 No such user" });
        await using var azurite = await Azurite.LeaseAsync();
        var storage = azurite.ConnectionString;
        var map = Path.Combine(TestEnvironment.TempFolder("suppression"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{postfix.Port}\n");
        await using var mta = await MtaSystem.StartAsync(storage, new Dictionary<string, string?> { ["Mta:Suppression"] = "true", ["Mta:TransportMapFile"] = map });

        // The 550 5.1.1 is an invalid recipient: its address goes on the list (mail without a tenant: the "_" list).
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "gone@example.test", "first"));
        async Task<JsonElement[]> SuppressedAsync()
        {
            var (exit, output, error) = await MtactlAsync(storage, "suppression", "list", "--json");
            Assert.True(exit == 0, error);
            return JsonDocument.Parse(output).RootElement.EnumerateArray().ToArray();
        }
        var suppression = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Mta.Mail.Suppression.SuppressionList>(mta.MailServices);
        Assert.True(await TestEnvironment.EventuallyAsync(async () => await suppression.FindAsync(null, "gone@example.test") is not null, Timeout), "not suppressed");
        var entry = Assert.Single(await SuppressedAsync());
        Assert.Equal(("gone@example.test", "invalid_recipient"), (entry.GetProperty("address").GetString(), entry.GetProperty("category").GetString()));
        Assert.Equal(JsonValueKind.Null, entry.GetProperty("expires").ValueKind); // invalid_recipient=0: never expires

        // The next message: the suppressed recipient is dropped at cleanup, the other delivered.
        var message = TestMail.Message("sender@localhost", "gone@example.test", "second");
        message.Cc.Add(MimeKit.MailboxAddress.Parse("ok@example.test"));
        await TestMail.SendAsync(mta.SmtpPort, message);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(postfix.Received("ok@example.test")), Timeout), postfix.Output);
        Assert.Single(mta.Log.Matching("to=<gone@example.test>, status=suppressed (invalid_recipient since"));
        Assert.Single(mta.Log.Matching("to=<gone@example.test>", "status=bounced")); // only the first message's

        // mtactl: remove, add by hand, export, import.
        Assert.Equal(0, (await MtactlAsync(storage, "suppression", "remove", "gone@example.test")).Exit);
        Assert.Equal(1, (await MtactlAsync(storage, "suppression", "remove", "gone@example.test")).Exit);
        Assert.Equal(0, (await MtactlAsync(storage, "suppression", "add", "--tenant", "acme", "x@example.net", "--reason", "asked to stop")).Exit);
        var import = Path.Combine(TestEnvironment.TempFolder("suppression"), "import.csv");
        await File.WriteAllTextAsync(import, "address,category,added,expires,reason\na@example.net,complaint,,,\nb@example.net\n");
        var imported = await MtactlAsync(storage, "suppression", "import", "--tenant", "acme", import);
        Assert.Equal((0, "2 address(es) imported"), (imported.Exit, imported.Out.Trim()));
        var export = await MtactlAsync(storage, "suppression", "export", "--tenant", "acme");
        Assert.Equal(0, export.Exit);
        var rows = export.Out.Trim().Split('\n').Select(l => l.Split(',')).ToList();
        Assert.Equal(["address", "category", "added", "expires", "reason"], rows[0]);
        Assert.Equal(["a@example.net:complaint", "b@example.net:manual", "x@example.net:manual"], rows.Skip(1).Select(r => $"{r[0]}:{r[1]}").Order());
        Assert.Contains(rows, r => r[0] == "x@example.net" && r[4] == "asked to stop");
        Assert.DoesNotContain(await SuppressedAsync(), e => e.GetProperty("tenant").GetString() == "_"); // gone@ was removed
    }
}

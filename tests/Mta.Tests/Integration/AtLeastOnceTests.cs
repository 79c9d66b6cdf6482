using System.Text;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;
using Mta.Mail.Cleanup;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Spool;
using Mta.Mail.Tracking;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The queues deliver at least once and a worker can die anywhere: what comes twice is recognised by the completion
/// records and not delivered twice, and a spooled message's blob goes once every recipient has reached a final state.
/// </summary>
[RunsLong(50)]
public sealed class AtLeastOnceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static async Task<(AzuriteAccount, MtaSystem)> StartAsync(string map, Dictionary<string, string?>? settings = null)
    {
        var azurite = await Azurite.LeaseAsync();
        var file = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(file, map);
        settings ??= [];
        settings["Mta:TransportMapFile"] = file;
        return (azurite, await MtaSystem.StartAsync(azurite.ConnectionString, settings));
    }

    [SkippableFact]
    public async Task A_crash_between_jobs_queued_and_incoming_deleted_does_not_deliver_twice()
    {
        await using var sink = await SmtpSink.StartAsync();
        var (azurite, mta) = await StartAsync($"example.test smtp:[127.0.0.1]:{sink.Port}\n");
        await using var _ = azurite;
        await using var __ = mta;
        var token = Guid.NewGuid().ToString("N");
        var envelope = new IncomingEnvelope
        {
            Id = "D" + token[..15].ToUpperInvariant(), Sender = "a@sender.test", Recipients = ["u@example.test"], ClientAddress = "127.0.0.1",
            Helo = "client.test", ArrivalTime = DateTimeOffset.UtcNow, Size = 100, BlobName = "D" + token[..15].ToUpperInvariant(),
            Content = Encoding.ASCII.GetBytes($"Subject: {token}\r\n\r\nonce only\r\n"),
        };
        var cleanup = mta.MailServices.GetRequiredService<CleanupStage>();

        // The first run queues the job and dies before its incoming queue message is deleted (the trigger never
        // learns it succeeded); the job is delivered meanwhile.
        await cleanup.ProcessAsync(envelope, default, dequeueCount: 1);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains(token))), Timeout), "not delivered");
        var again = new DeliveryJob
        {
            MessageId = envelope.Id, JobId = envelope.Id + ".0", BlobName = envelope.BlobName, Sender = envelope.Sender,
            Recipients = envelope.Recipients, NextHop = new NextHop { Transport = Transport.Smtp, Host = "127.0.0.1", Port = sink.Port },
            ArrivalTime = envelope.ArrivalTime, Content = envelope.Content,
        };
        // Its invocation ends with the completion record, just after the sink has the mail: the twin below comes later.
        var completions = mta.MailServices.GetRequiredService<CompletionLog>();
        Assert.True(await TestEnvironment.EventuallyAsync(() => completions.IsRecordedAsync(again), Timeout), "the delivery was not recorded");
        // The queue message comes back: cleanup runs again and queues the same job (same id) once more.
        await cleanup.ProcessAsync(envelope, default, dequeueCount: 2);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
            mta.Log.Matching($"{envelope.Id}: job {envelope.Id}.0 attempt 0 was finished before (dequeued 1 times, cleanup ran twice)").Count == 1), Timeout),
            "the twin job was not recognised:\n" + string.Join("\n", mta.Log.Lines));

        // A worker that died after delivering, before deleting its queue message: the job comes back with dequeue count 2.
        var delivery = mta.MailServices.GetRequiredService<DeliveryStage>();
        await delivery.ProcessAsync(again, default, dequeueCount: 2);
        Assert.Single(mta.Log.Matching($"job {envelope.Id}.0 attempt 0 was finished before (dequeued 2 times)"));

        await Task.Delay(1000);
        Assert.Single(sink.Dumps(), d => d.Contains(token));
        // The same job with dequeue count 1 and no twin mark is not looked up at all: a record costs no read.
        await delivery.ProcessAsync(again, default, dequeueCount: 1);
        Assert.Equal(2, sink.Dumps().Count(d => d.Contains(token)));
    }

    [SkippableTheory]
    [InlineData(true)]  // two jobs: a reference set holds the blob
    [InlineData(false)] // one job, the sole holder, until its bounce report needs the blob too
    public async Task A_spooled_message_stays_until_every_recipient_is_final_and_then_goes(bool twoRecipients)
    {
        await using var sink = await SmtpSink.StartAsync();
        var closed = TestEnvironment.FreeTcpPort(); // nothing listens: that recipient is deferred until it expires
        var (azurite, mta) = await StartAsync($"example.test smtp:[127.0.0.1]:{sink.Port}\ndead.test smtp:[127.0.0.1]:{closed}\n", new()
        {
            ["Mta:MinimalBackoffSeconds"] = "2", ["Mta:MaximalBackoffSeconds"] = "2", ["Mta:MaximalQueueLifetimeSeconds"] = "15", ["Mta:BackoffJitter"] = "0",
        }); // long enough that the first attempt comes before expiry on a loaded machine
        await using var _ = azurite;
        await using var __ = mta;

        var token = Guid.NewGuid().ToString("N");
        var message = TestMail.Message("sender@localhost", "gone@dead.test", token, new string('x', 60_000)); // over the inline limit: spooled
        if (twoRecipients) message.To.Add(MailboxAddress.Parse("ok@example.test"));
        var reply = await TestMail.SendAsync(mta.SmtpPort, message);
        var id = reply[(reply.LastIndexOf(' ') + 1)..].Trim();

        var spool = new BlobContainerClient(azurite.ConnectionString, MessageSpool.ContainerName);
        var references = new SpoolReferences(TestEnvironment.Storage(azurite.ConnectionString));
        if (twoRecipients)
        {
            Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains(token))), Timeout), "not delivered");
            // One recipient is done (its reference released just after the delivery), the other is still being retried:
            // the blob stays, held by that job.
            Assert.True(await TestEnvironment.EventuallyAsync(async () =>
                (await references.OpenReferencesAsync(id))!.Order().SequenceEqual([id + ".0"]), Timeout), "the delivered job's reference stayed");
        }
        else
        {
            Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Log.Matching(id, "status=deferred").Count > 0), Timeout), "not tried");
            Assert.Null(await references.OpenReferencesAsync(id)); // the sole holder needs no reference set
        }
        Assert.True((await spool.GetBlobClient(id).ExistsAsync()).Value, "blob deleted while a recipient was still deferred");

        // It expires and bounces; the report quotes the original from the spool, and then nothing needs the blob.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("sender").Length == 1), Timeout), "no bounce");
        var bounce = File.ReadAllText(mta.Maildir("sender")[0]);
        Assert.Contains("gone@dead.test", bounce);
        Assert.Contains(token, bounce); // the original came back whole (under bounce_size_limit)
        Assert.True(await TestEnvironment.EventuallyAsync(async () => !(await spool.GetBlobClient(id).ExistsAsync()).Value, Timeout),
            "the blob outlived its last recipient");
        Assert.Null(await references.OpenReferencesAsync(id));
        Assert.Empty(await spool.GetBlobsAsync().ToListAsync()); // the bounce itself travelled inline: nothing left behind
    }

    [SkippableFact]
    public async Task Completion_record_tables_older_than_the_queue_lifetime_are_dropped()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var tables = new TableServiceClient(azurite.ConnectionString);
        var today = DateTime.UtcNow;
        foreach (var day in new[] { today, today.AddDays(-6), today.AddDays(-7), today.AddDays(-8), today.AddDays(-30) })
            await tables.CreateTableIfNotExistsAsync(CompletionLog.TablePrefix + day.ToString("yyyyMMdd"));
        await tables.CreateTableIfNotExistsAsync(SpoolReferences.TableName);

        var log = new CompletionLog(TestEnvironment.Storage(azurite.ConnectionString),
            Microsoft.Extensions.Options.Options.Create(new Mta.Mail.Configuration.MtaOptions()), TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<CompletionLog>.Instance);
        Assert.Equal(2, await log.SweepAsync()); // 5 days' lifetime + 2: the days 8 and 30 days back go
        var left = await tables.QueryAsync().Select(t => t.Name).ToListAsync();
        Assert.Equal(new[] { SpoolReferences.TableName }.Concat(new[] { today, today.AddDays(-6), today.AddDays(-7) }
            .Select(d => CompletionLog.TablePrefix + d.ToString("yyyyMMdd"))).Order(), left.Order());
    }
}

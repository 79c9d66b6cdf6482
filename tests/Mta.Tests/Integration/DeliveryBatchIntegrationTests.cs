using System.Text;
using Azure.Storage.Queues;
using Microsoft.Extensions.DependencyInjection;
using Mta.Mail.Delivery;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Batches on the delivery queue with the real parts: many clients at once make the ingress put jobs together (fewer
/// queue messages than messages, every message delivered once), and a bad job in a batch is split off on its own to
/// the poison queue while its neighbours are delivered.
/// </summary>
[RunsLong(21)]
public sealed class DeliveryBatchIntegrationTests
{
    private static QueueClient Queue(string storage, string name) => new(storage, name, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });

    [SkippableFact]
    public async Task Mail_from_many_sessions_at_once_is_queued_in_batches_and_each_message_delivered_once()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var other = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sink.Port}\nother.test smtp:[127.0.0.1]:{other.Port}\n");
        // The ingress alone first, so the queued batches can be looked at before anything takes them.
        var settings = new Dictionary<string, string?> { ["Mta:TransportMapFile"] = map, ["Ingress:CleanupInline"] = "true" };
        const int Messages = 60;
        await using (var ingress = await MtaSystem.StartAsync(azurite.ConnectionString, settings, functions: false))
        {
            await TestMail.SendAsync(ingress.SmtpPort, TestMail.Message("a@sender.test", "warm@example.test", "warm-up"));
            await Task.WhenAll(Enumerable.Range(0, 20).Select(async c =>
            {
                for (var i = c; i < Messages; i += 20)
                    await TestMail.SendAsync(ingress.SmtpPort, TestMail.Message("a@sender.test", $"u{i}@{(i % 3 == 0 ? "other" : "example")}.test", $"m{i}"));
            }));
        }

        var texts = new List<string>();
        var delivery = Queue(azurite.ConnectionString, QueueNames.Delivery);
        while ((await delivery.ReceiveMessagesAsync(32)).Value is { Length: > 0 } got)
            foreach (var m in got)
            {
                texts.Add(m.MessageText);
                await delivery.DeleteMessageAsync(m.MessageId, m.PopReceipt);
            }
        var batches = texts.Select(DeliveryBatch.Parse).ToList();
        Assert.Equal(Messages + 1, batches.Sum(b => b.Count));
        Assert.Equal(Messages + 1, batches.SelectMany(b => b).Select(j => j.MessageId).Distinct().Count());
        Assert.True(batches.Count < Messages, $"{batches.Count} queue messages for {Messages + 1} jobs: no batching");
        // A batch is for one next hop: example.test's and other.test's jobs never share one.
        Assert.All(batches, b => Assert.Single(b.Select(j => j.Recipients[0].Split('@')[1]).Distinct()));
        Assert.Contains(batches, b => b.Count > 1 && b[0].Recipients[0].EndsWith("@other.test"));

        // Put back as they were, then delivered by the functions: every message once, none lost.
        foreach (var t in texts) await delivery.SendMessageAsync(t);
        await using var functions = await MtaSystem.StartAsync(azurite.ConnectionString, settings, ingress: false);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count + other.Dumps().Count >= Messages + 1), TimeSpan.FromSeconds(60)));
        await Task.Delay(1000);
        var dumps = sink.Dumps().Concat(other.Dumps()).ToList();
        Assert.Equal(Messages / 3, other.Dumps().Count);
        Assert.Equal(Messages + 1, dumps.Count);
        foreach (var i in Enumerable.Range(0, Messages))
            Assert.Single(dumps, d => d.Contains($"Subject: m{i}\r\n") || d.Contains($"Subject: m{i}\n"));
        Assert.Empty(functions.Log.Matching("failed in a batch"));
    }

    private static DeliveryJob Job(int port, string id, params string[] recipients) => new()
    {
        MessageId = id, JobId = id + ".0", BlobName = id, Sender = "a@sender.test", Recipients = recipients,
        NextHop = new NextHop { Transport = Transport.Smtp, Host = "127.0.0.1", Port = port },
        ArrivalTime = DateTimeOffset.UtcNow, Content = Encoding.ASCII.GetBytes($"Subject: {id}\r\n\r\nbody {id}\r\n"),
    };

    private static async Task<QueueClient> PutAsync(string storage, params DeliveryJob[] jobs)
    {
        var delivery = Queue(storage, QueueNames.Delivery);
        await delivery.CreateIfNotExistsAsync();
        await delivery.SendMessageAsync(DeliveryBatch.Join(jobs.Select(QueueJson.Serialize).ToList()));
        return delivery;
    }

    [SkippableFact]
    public async Task A_batch_past_its_time_budget_puts_the_rest_back_and_each_job_is_delivered_once()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        // No time at all: each run delivers one job and puts the others back, as a batch past a minute would.
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString,
            new Dictionary<string, string?> { ["Mta:DeliveryBatchTimeBudgetSeconds"] = "0" }, ingress: false);

        var delivery = await PutAsync(azurite.ConnectionString, Job(sink.Port, "ONE", "u1@example.test"),
            Job(sink.Port, "TWO", "u2@example.test"), Job(sink.Port, "THREE", "u3@example.test"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count >= 3), TimeSpan.FromSeconds(60)));
        await Task.Delay(1000);
        var dumps = sink.Dumps();
        Assert.Equal(3, dumps.Count);
        foreach (var id in new[] { "ONE", "TWO", "THREE" })
            Assert.Single(dumps, d => d.Contains("body " + id));
        Assert.Single(mta.Log.Matching("TWO: batch past its time budget", "2 job(s) put back"));
        Assert.Single(mta.Log.Matching("THREE: batch past its time budget", "1 job(s) put back"));
        Assert.Equal(0, (await delivery.GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    [SkippableFact]
    public async Task A_bad_job_in_a_batch_goes_to_the_poison_queue_alone_and_the_others_are_delivered()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["AzureFunctionsJobHost:extensions:queues:visibilityTimeout"] = "00:00:00",
        }, ingress: false);

        // The middle job has no recipients: a malformed job, refused every time it is tried.
        var delivery = await PutAsync(azurite.ConnectionString, Job(sink.Port, "GOOD1", "u1@example.test"), Job(sink.Port, "BAD"),
            Job(sink.Port, "GOOD2", "u2@example.test"));

        var poison = Queue(azurite.ConnectionString, QueueNames.Delivery + "-poison");
        Assert.True(await TestEnvironment.EventuallyAsync(async () =>
            (await poison.ExistsAsync()).Value && (await poison.PeekMessagesAsync(32)).Value.Length > 0, TimeSpan.FromSeconds(60)));
        await Task.Delay(1000);
        var poisoned = Assert.Single((await poison.PeekMessagesAsync(32)).Value);
        var job = Assert.Single(DeliveryBatch.Parse(poisoned.MessageText));
        Assert.Equal("BAD.0", job.JobId);
        Assert.True(job.MaybeDuplicate);
        Assert.Single(mta.Log.Matching("BAD: job BAD.0 failed in a batch of 3, queued again on its own"));

        var dumps = sink.Dumps();
        Assert.Equal(2, dumps.Count);
        Assert.Single(dumps, d => d.Contains("body GOOD1"));
        Assert.Single(dumps, d => d.Contains("body GOOD2"));
        Assert.Equal(0, (await delivery.GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }
}

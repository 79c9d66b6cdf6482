using System.Text;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>
/// The delivery queue's batches: their text (one job, or an array of them) and the group commit that forms them, with
/// the put held open so that what piles up behind it is known.
/// </summary>
public sealed class DeliveryBatchTests
{
    private static DeliveryJob Job(int n, string host = "a.test", byte[]? content = null) => new()
    {
        MessageId = $"M{n}", JobId = $"M{n}.0", BlobName = $"M{n}", Sender = "s@sender.test", Recipients = [$"u{n}@{host}"],
        NextHop = new NextHop { Transport = Transport.Smtp, Host = host, Port = 25 }, ArrivalTime = DateTimeOffset.UnixEpoch,
        Content = content ?? Encoding.ASCII.GetBytes($"Subject: {n}\r\n\r\nbody\r\n"),
    };

    [Fact]
    public void A_batch_is_an_array_of_jobs_and_a_lone_job_stays_an_object()
    {
        var one = QueueJson.Serialize(Job(1));
        Assert.Equal(one, DeliveryBatch.Join([one]));
        Assert.Equal("M1.0", Assert.Single(DeliveryBatch.Parse(one)).JobId);

        var texts = new[] { Job(1), Job(2), Job(3) }.Select(QueueJson.Serialize).ToList();
        var joined = DeliveryBatch.Join(texts);
        Assert.StartsWith("[{", joined);
        Assert.Equal(["M1.0", "M2.0", "M3.0"], DeliveryBatch.Parse(joined).Select(j => j.JobId));
        Assert.Equal(Encoding.UTF8.GetByteCount(joined), DeliveryBatch.JoinedLength(3, texts.Sum(Encoding.UTF8.GetByteCount)));
        Assert.Equal(Job(2).Content, DeliveryBatch.Parse(joined)[1].Content);

        Assert.Throws<InvalidQueueMessageException>(() => DeliveryBatch.Parse("[]"));
        Assert.Throws<InvalidQueueMessageException>(() => DeliveryBatch.Parse("[null]"));
        Assert.Throws<InvalidQueueMessageException>(() => DeliveryBatch.Parse(" [" + texts[0]));
        Assert.Throws<InvalidQueueMessageException>(() => DeliveryBatch.Parse("{\"messageId\":"));
    }

    [Fact]
    public async Task Jobs_ready_during_a_put_go_together_per_next_hop_within_the_limits()
    {
        var puts = new List<string>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batcher = new GroupCommitWriter(async (text, _) =>
        {
            lock (puts) puts.Add(text);
            first.TrySetResult();
            await gate.Task;
        });

        // A lone job goes at once, in a put of its own.
        var lone = batcher.TrySendAsync(Job(0), CancellationToken.None);
        await first.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(lone.IsCompleted); // not on the queue until its put is done

        // While that put is under way: 40 more for the same hop, 5 for another, 6 of 20 KB each for a third.
        var big = Enumerable.Range(0, 6).Select(i => Job(200 + i, "c.test", RandomNumberGenerator(15_000))).ToList();
        var waiting = Enumerable.Range(1, 40).Select(i => batcher.TrySendAsync(Job(i), CancellationToken.None))
            .Concat(Enumerable.Range(100, 5).Select(i => batcher.TrySendAsync(Job(i, "b.test"), CancellationToken.None)))
            .Concat(big.Select(j => batcher.TrySendAsync(j, CancellationToken.None))).ToList();
        gate.SetResult();
        Assert.True(await lone);
        Assert.All(await Task.WhenAll(waiting), Assert.True);

        var batches = puts.Select(DeliveryBatch.Parse).ToList();
        Assert.Equal(["M0.0"], batches[0].Select(j => j.JobId));
        // Every job once; each put one hop's jobs, at most 16, at most 64 KiB.
        Assert.Equal(52, batches.Sum(b => b.Count));
        Assert.Equal(52, batches.SelectMany(b => b).Select(j => j.JobId).Distinct().Count());
        Assert.All(batches, b => Assert.Single(b.Select(j => j.NextHop).Distinct()));
        Assert.All(puts, p => Assert.True(Encoding.UTF8.GetByteCount(p) <= MailQueues.MaxMessageText));
        Assert.All(batches, b => Assert.InRange(b.Count, 1, DeliveryBatch.MaxJobs));
        // Batched, not one put per job: a.test's 40 in 3 puts (16, 16, 8) after the lone one, b.test's 5 in one or two
        // (the first may go before the others arrive), the 20 KB jobs three to a put at most.
        var a = batches.Where(b => b[0].NextHop.Host == "a.test").Skip(1).Select(b => b.Count).ToList();
        Assert.Equal([16, 16, 8], a);
        Assert.InRange(batches.Count(b => b[0].NextHop.Host == "b.test"), 1, 2);
        var c = batches.Where(b => b[0].NextHop.Host == "c.test").Select(b => b.Count).ToList();
        Assert.Equal(6, c.Sum());
        Assert.InRange(c.Count, 2, 4);
        Assert.All(c, n => Assert.InRange(n, 1, 3));
    }

    [Fact]
    public async Task A_failed_put_fails_every_job_in_it_and_only_those()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var n = 0;
        var batcher = new GroupCommitWriter(async (text, _) =>
        {
            switch (Interlocked.Increment(ref n))
            {
                case 1:
                    first.TrySetResult();
                    await gate.Task;
                    return;
                case 2:
                    throw new IOException("storage went away");
            }
        });
        var lone = batcher.TrySendAsync(Job(0), CancellationToken.None);
        await first.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var behind = Enumerable.Range(1, 5).Select(i => batcher.TrySendAsync(Job(i), CancellationToken.None)).ToList();
        gate.SetResult();
        Assert.True(await lone);
        foreach (var t in behind)
            Assert.Equal("storage went away", (await Assert.ThrowsAsync<IOException>(() => t)).Message);

        // The lane is not stuck after a failure: the next job is put.
        Assert.True(await batcher.TrySendAsync(Job(9), CancellationToken.None));
        Assert.Equal(3, n);
    }

    [Fact]
    public async Task A_job_too_big_for_a_queue_message_is_refused_and_nothing_is_put()
    {
        var puts = 0;
        var batcher = new GroupCommitWriter((_, _) => { Interlocked.Increment(ref puts); return Task.CompletedTask; });
        Assert.False(await batcher.TrySendAsync(Job(1, content: RandomNumberGenerator(70_000)), CancellationToken.None));
        Assert.Equal(0, puts);
    }

    private static byte[] RandomNumberGenerator(int size) => System.Security.Cryptography.RandomNumberGenerator.GetBytes(size);
}

using Mta.Mail.Contracts;

namespace Mta.Mail.Queues;

/// <summary>
/// Group commit for a queue: elements of one lane (the <c>delivery</c> queue's jobs for one next hop; the <c>events</c>
/// queue's events) that become ready while a put for that lane is under way go together in the next queue message (a
/// JSON array, <see cref="DeliveryBatch"/>), up to
/// <see cref="DeliveryBatch.MaxJobs"/> jobs and the 64 KiB a queue message holds. A lone job goes at once, in a put of
/// its own, so batching adds no wait when there is no load; under load each put, receive and delete carries many jobs,
/// and a full batch waiting behind a put gets a put of its own (up to <see cref="MaxWriters"/> at once).
/// A caller's job is on the queue when its task completes; when the put fails, every job in it gets the error.
/// </summary>
/// <param name="put">Puts one queue message's text.</param>
/// <param name="maxElements">Elements per queue message at most: <see cref="DeliveryBatch.MaxJobs"/> for jobs (one
/// invocation delivers them together); more for events, which are small and posted together.</param>
internal sealed class GroupCommitWriter(Func<string, CancellationToken, Task> put, int maxElements = DeliveryBatch.MaxJobs)
{
    private sealed record Pending(string Text, int Bytes, TaskCompletionSource Done);

    /// <summary>
    /// Puts under way at once for one next hop. One is enough until a full batch waits behind it: then a second (up to
    /// this many) takes it, so a burst to one destination is not held to one queue put's round trip per batch.
    /// </summary>
    internal const int MaxWriters = 4;

    // One lane per next hop, with its writers (each one put under way at a time); created on demand, dropped when drained.
    private sealed class Lane
    {
        public readonly Queue<Pending> Waiting = new();
        public int Writers;
    }

    private readonly Lock _gate = new();
    private readonly Dictionary<string, Lane> _lanes = new();

    /// <summary>Queues <paramref name="job"/> in its next hop's lane; false (and nothing queued) when it does not fit in a queue message alone.</summary>
    public Task<bool> TrySendAsync(DeliveryJob job, CancellationToken ct) => TrySendAsync(job.NextHop.ToString(), QueueJson.Serialize(job), ct);

    /// <summary>Queues one element's JSON <paramref name="text"/> in <paramref name="lane"/>; false (and nothing queued) when it does not fit alone.</summary>
    public async Task<bool> TrySendAsync(string lane, string text, CancellationToken ct)
    {
        var bytes = System.Text.Encoding.UTF8.GetByteCount(text);
        if (bytes > MailQueues.MaxMessageText) return false;
        var pending = new Pending(text, bytes, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        var key = lane;
        Lane? start = null;
        lock (_gate)
        {
            if (!_lanes.TryGetValue(key, out var found))
                _lanes[key] = found = new Lane();
            found.Waiting.Enqueue(pending);
            if (found.Writers == 0 || found.Writers < MaxWriters && found.Waiting.Count >= maxElements * found.Writers)
            {
                found.Writers++;
                start = found;
            }
        }
        if (start is not null) _ = Task.Run(() => WriteAsync(key, start), CancellationToken.None);
        // The put goes on if this caller gives up waiting: it must not take the other jobs of its batch down with it.
        await pending.Done.Task.WaitAsync(ct);
        return true;
    }

    // One of the lane's writers: whatever piled up during a put goes in the next one.
    private async Task WriteAsync(string key, Lane lane)
    {
        while (true)
        {
            var batch = new List<Pending>();
            lock (_gate)
            {
                var bytes = 0;
                while (lane.Waiting.TryPeek(out var next) && batch.Count < maxElements
                       && DeliveryBatch.JoinedLength(batch.Count + 1, bytes + next.Bytes) <= MailQueues.MaxMessageText)
                {
                    batch.Add(lane.Waiting.Dequeue());
                    bytes += next.Bytes;
                }
                if (batch.Count == 0)
                {
                    if (--lane.Writers == 0) _lanes.Remove(key);
                    return;
                }
            }
            try
            {
                await put(DeliveryBatch.Join(batch.Select(p => p.Text).ToList()), CancellationToken.None);
                foreach (var p in batch) p.Done.TrySetResult();
            }
            catch (Exception e)
            {
                foreach (var p in batch) p.Done.TrySetException(e);
            }
        }
    }
}

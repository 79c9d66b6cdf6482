namespace Mta.Mail.Contracts;

/// <summary>
/// The text of a message on the <c>delivery</c> queue: one <see cref="DeliveryJob"/> (a JSON object), or several jobs
/// for the same next hop that were ready together (a JSON array of them), so that a burst costs one put, one receive
/// and one delete per batch rather than per job. Jobs put back, deferred or released always travel alone.
/// </summary>
public static class DeliveryBatch
{
    /// <summary>The most jobs in one queue message: a batch is delivered one job after another, so it stays short.</summary>
    public const int MaxJobs = 16;

    /// <summary>The queue message text for jobs already serialized with <see cref="QueueJson"/>.</summary>
    public static string Join(IReadOnlyList<string> jobs)
        => jobs.Count == 1 ? jobs[0] : "[" + string.Join(',', jobs) + "]";

    /// <summary>
    /// UTF-8 length of <see cref="Join"/>'s text for jobs of these UTF-8 lengths, without building it: the brackets
    /// and commas of an array.
    /// </summary>
    public static int JoinedLength(int jobs, int bytes) => jobs <= 1 ? bytes : bytes + jobs + 1;

    /// <summary>
    /// The jobs in a queue message's text: one or several. Throws <see cref="InvalidQueueMessageException"/> for
    /// anything else (an empty array included), so the trigger retries and then poisons it.
    /// </summary>
    public static IReadOnlyList<DeliveryJob> Parse(string text)
    {
        if (text.AsSpan().TrimStart().StartsWith("["))
        {
            var jobs = QueueJson.Deserialize<List<DeliveryJob>>(text);
            if (jobs.Count == 0 || jobs.Any(j => j is null))
                throw new InvalidQueueMessageException("delivery batch without jobs");
            return jobs;
        }
        return [QueueJson.Deserialize<DeliveryJob>(text)];
    }
}

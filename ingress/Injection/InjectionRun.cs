using System.Net;
using Microsoft.Extensions.Logging;
using Mta.Ingress.Acceptance;
using Mta.Mail.Contracts;

namespace Mta.Ingress.Injection;

/// <summary>How a run of an injection request ended.</summary>
/// <param name="Queued">The queue ids known to be queued, in message order.</param>
/// <param name="Refusal">Why a message was refused (the request stopped there), or null.</param>
/// <param name="StorageError">Why storage failed (the request stopped there), or null.</param>
public sealed record InjectionResult(IReadOnlyList<string> Queued, string? Refusal, string? StorageError);

/// <summary>
/// Queues the messages of one injection request: a few at a time (<see cref="IngressOptions.InjectionConcurrency"/>),
/// so the delivery queue's group commit batches their jobs, in chunks after which the request's
/// <see cref="InjectionLedger"/> record is checkpointed when it has an idempotency key. A run under a key that resumes
/// an earlier one starts at its checkpoint with the same ids, arrival time and octets; the messages it queues again
/// may have twins from the earlier run, so they say so (<see cref="IncomingEnvelope.MaybeQueued"/>: their spooled
/// bytes are never deleted as orphans), and every job of a keyed request carries a claim, so of two twins one is
/// delivered (<see cref="IncomingEnvelope.DeliverOnce"/>).
/// </summary>
public sealed class InjectionRun(InjectionComposer composer, InjectionPlan plan, IMessageAcceptor acceptor, IngressOptions options, string hostname,
    InjectionClient client, IPAddress from, ILogger log)
{
    /// <summary>Messages between checkpoints.</summary>
    public const int Chunk = 256;

    /// <summary>The id of message <paramref name="n"/> under <paramref name="entry"/>.</summary>
    public static string IdOf(InjectionLedger.Entry entry, int n) => QueueId.Injected(entry.Started, entry.Salt, n);

    /// <summary>
    /// Queues messages from <paramref name="entry"/>'s checkpoint on. <paramref name="checkpoint"/> (null without a key)
    /// records progress after each chunk and returns the record to go on with, or null when the key was lost.
    /// </summary>
    public async Task<(InjectionResult Result, InjectionLedger.Entry Entry)> RunAsync(InjectionLedger.Entry entry, bool keyed,
        Func<InjectionLedger.Entry, int, Task<InjectionLedger.Entry?>>? checkpoint, CancellationToken ct)
    {
        var resumedFrom = entry.Queued;
        var queued = new bool[plan.Messages.Count];
        for (var n = 0; n < resumedFrom; n++) queued[n] = true;
        string? refusal = null, failure = null;
        for (var start = resumedFrom; start < plan.Messages.Count && refusal is null && failure is null; start += Chunk)
        {
            var end = Math.Min(start + Chunk, plan.Messages.Count);
            await Parallel.ForEachAsync(Enumerable.Range(start, end - start), new ParallelOptions { MaxDegreeOfParallelism = options.InjectionConcurrency, CancellationToken = ct },
                async (n, token) =>
                {
                    if (Volatile.Read(ref refusal) is not null || Volatile.Read(ref failure) is not null) return;
                    try
                    {
                        if (await QueueAsync(entry, n, keyed, resumed: n >= resumedFrom && resumedFrom > 0, token) is { } refused)
                            Interlocked.CompareExchange(ref refusal, $"message {n} (recipient {plan.Messages[n][0]}): {refused}", null);
                        else queued[n] = true;
                    }
                    catch (StorageUnavailableException e) { Interlocked.CompareExchange(ref failure, e.Message, null); }
                });
            if (refusal is null && failure is null && checkpoint is not null && end < plan.Messages.Count)
            {
                if (await TryCheckpointAsync(checkpoint, entry, end) is { } next) entry = next;
                else failure = "the request's record could not be written";
            }
        }
        var ids = Enumerable.Range(0, queued.Length).Where(n => queued[n]).Select(n => IdOf(entry, n)).ToList();
        return (new InjectionResult(ids, refusal, failure), entry with { Queued = Prefix(queued) });
    }

    /// <summary>How many messages from the first are queued.</summary>
    public static int Prefix(bool[] queued) => Array.IndexOf(queued, false) is var n and >= 0 ? n : queued.Length;

    private static async Task<InjectionLedger.Entry?> TryCheckpointAsync(Func<InjectionLedger.Entry, int, Task<InjectionLedger.Entry?>> checkpoint,
        InjectionLedger.Entry entry, int queued)
    {
        try { return await checkpoint(entry, queued); }
        catch (Azure.RequestFailedException) { return null; }
    }

    // One message: as rendered (or rendered again), stamped with its id, handed to the acceptor as SMTP mail is.
    private async Task<string?> QueueAsync(InjectionLedger.Entry entry, int n, bool keyed, bool resumed, CancellationToken ct)
    {
        var id = IdOf(entry, n);
        var octets = plan.Octets(n) ?? composer.Render(plan.Messages[n][0]).Octets!;
        using var content = acceptor.NewMessage(id);
        content.Write(composer.Stamp(entry.Started, id));
        content.Write(octets);
        var recipients = plan.Messages[n].Select(r => composer.Recipients[r]).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        var envelope = new IncomingEnvelope
        {
            Id = id,
            Sender = composer.Sender,
            Recipients = recipients,
            ClientAddress = (from.IsIPv4MappedToIPv6 ? from.MapToIPv4() : from).ToString(),
            Helo = client.Tenant,
            ArrivalTime = entry.Started, // the same on a retry: the completion records and claims are kept per arrival day
            Size = content.Written,
            BlobName = id,
            ReceivedBy = hostname,
            Protocol = "HTTP",
            TrustedClient = true, // the token authenticated it, as a login does for submission
            Login = client.Tenant,
            Dsn = InjectionMetadata.Dsn(composer.Request, recipients),
            Tags = InjectionMetadata.Tags(composer.Request, client.Tenant),
            DeliverOnce = keyed,
            MaybeQueued = resumed,
        };
        var refused = await acceptor.AcceptAsync(envelope, content, ct);
        if (refused is not null) log.LogInformation("{QueueId}: injection for {Tenant}: refused: {Reply}", id, client.Tenant, refused);
        return refused;
    }
}

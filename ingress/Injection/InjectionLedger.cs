using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Data.Tables;
using Mta.Mail.Storage;

namespace Mta.Ingress.Injection;

/// <summary>
/// What an injection request under an <c>Idempotency-Key</c> has done so far: one Azure Table entity per (tenant, key)
/// in table <c>mtainjections</c>, shared by every replica. It holds what the request's queue ids are made from (its
/// start and salt, so a retry queues each message under the id it had), how many messages from the start are known to
/// be queued, whether it finished, and a lease, so two copies of one request never run at once. Changed only with
/// ETag-checked writes.
/// </summary>
public sealed class InjectionLedger(TableClient table, TimeProvider clock, TimeSpan lifetime)
{
    /// <summary>The table's name.</summary>
    public const string TableName = "mtainjections";

    /// <summary>How long a running request holds its key; renewed at every checkpoint.</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    /// <summary>Storage requests made, for the figures in docs/benchmarks.md.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    private long _requests;

    // Records past their lifetime are deleted, so the table holds about a lifetime's requests; a failed sweep waits an hour.
    private HourlySweep? _sweepOnce;
    private HourlySweep _sweep => _sweepOnce ??= new HourlySweep(() => SweepAsync(), _ => { });

    /// <summary>One key's record.</summary>
    /// <param name="BodyHash">SHA-256 of the request body, hex: the same key with another body is a client error.</param>
    /// <param name="Started">When the request first ran (millisecond precision): its messages' arrival time and ids.</param>
    /// <param name="Salt">The ids' salt (<see cref="Acceptance.QueueId.Injected"/>).</param>
    /// <param name="Messages">How many messages the request makes.</param>
    /// <param name="Queued">How many messages from the first are known to be queued.</param>
    /// <param name="Done">Every message is queued (or the request was refused part-way, see <paramref name="Refusal"/>).</param>
    /// <param name="LeaseUntil">Until when a run holds the key.</param>
    /// <param name="Refusal">Why the request stopped part-way, when a message was refused.</param>
    /// <param name="ETag">The entity's version.</param>
    public sealed record Entry(string BodyHash, DateTimeOffset Started, string Salt, int Messages, int Queued, bool Done,
        DateTimeOffset LeaseUntil, string? Refusal, ETag ETag);

    /// <summary>What a request under a key should do.</summary>
    public enum Verdict
    {
        /// <summary>The key is new (or forgotten): run from the first message.</summary>
        Fresh,

        /// <summary>A run stopped part-way (its lease is over): run on from the checkpoint, under the same ids.</summary>
        Resume,

        /// <summary>The request finished: answer as it was answered, queue nothing.</summary>
        Replay,

        /// <summary>Another run holds the key now: 409, try later.</summary>
        InProgress,

        /// <summary>The key was used for a different body: 422.</summary>
        Mismatch,
    }

    /// <summary>The rule, apart from storage: what a request with <paramref name="bodyHash"/> does given the key's record.</summary>
    public static Verdict Decide(Entry? entry, string bodyHash, DateTimeOffset now, TimeSpan lifetime)
    {
        if (entry is null || now - entry.Started > lifetime) return Verdict.Fresh;
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(entry.BodyHash), Encoding.ASCII.GetBytes(bodyHash))) return Verdict.Mismatch;
        if (entry.Done) return Verdict.Replay;
        return now < entry.LeaseUntil ? Verdict.InProgress : Verdict.Resume;
    }

    /// <summary>
    /// Takes the key for a run: the verdict and the record the run goes on with (for <see cref="Verdict.Fresh"/> and
    /// <see cref="Verdict.Resume"/> it now holds the lease). A run that lost a race to another replica sees InProgress.
    /// </summary>
    public async Task<(Verdict Verdict, Entry Entry)> BeginAsync(string tenant, string key, string bodyHash, int messages, CancellationToken ct)
    {
        var now = Truncated(clock.GetUtcNow());
        _sweep.Maybe();
        var found = await ReadAsync(tenant, key, ct);
        var verdict = Decide(found, bodyHash, now, lifetime);
        if (verdict is Verdict.Replay or Verdict.InProgress or Verdict.Mismatch) return (verdict, found!);
        var entry = verdict == Verdict.Fresh
            ? new Entry(bodyHash, now, Acceptance.QueueId.NewSalt(), messages, 0, false, now + Lease, null, default)
            : found! with { LeaseUntil = now + Lease };
        var written = await TryWriteAsync(tenant, key, entry, found?.ETag, ct);
        return written is null ? (Verdict.InProgress, found ?? entry) : (verdict, written);
    }

    /// <summary>Records progress and renews the lease; the record as written (null when another run took the key).</summary>
    public Task<Entry?> CheckpointAsync(string tenant, string key, Entry entry, int queued, CancellationToken ct)
        => TryWriteAsync(tenant, key, entry with { Queued = Math.Max(queued, entry.Queued), LeaseUntil = clock.GetUtcNow() + Lease }, entry.ETag, ct);

    /// <summary>Records the end: every message queued, or the refusal that stopped the request.</summary>
    public Task<Entry?> FinishAsync(string tenant, string key, Entry entry, int queued, string? refusal, CancellationToken ct)
        => TryWriteAsync(tenant, key, entry with { Queued = queued, Done = true, Refusal = refusal, LeaseUntil = clock.GetUtcNow() }, entry.ETag, ct);

    /// <summary>Ends a run that stopped part-way: the lease is given up so the client's retry may run on at once.</summary>
    public Task<Entry?> ReleaseAsync(string tenant, string key, Entry entry, int queued, CancellationToken ct)
        => TryWriteAsync(tenant, key, entry with { Queued = Math.Max(queued, entry.Queued), LeaseUntil = clock.GetUtcNow() }, entry.ETag, ct);

    /// <summary>Forgets a key whose request queued nothing (refused before its first message), so it may be sent again.</summary>
    public async Task ForgetAsync(string tenant, string key, Entry entry, CancellationToken ct)
    {
        Interlocked.Increment(ref _requests);
        try { await table.DeleteEntityAsync(tenant, RowOf(key), entry.ETag, ct); }
        catch (RequestFailedException e) when (e.Status is 404 or 412) { /* gone, or another run has it */ }
    }

    private async Task<Entry?> ReadAsync(string tenant, string key, CancellationToken ct)
    {
        Interlocked.Increment(ref _requests);
        try
        {
            var found = await table.GetEntityIfExistsAsync<TableEntity>(tenant, RowOf(key), cancellationToken: ct);
            if (!found.HasValue) return null;
            var e = found.Value!;
            return new Entry(e.GetString("BodyHash") ?? "", e.GetDateTimeOffset("Started") ?? default, e.GetString("Salt") ?? "000000",
                e.GetInt32("Messages") ?? 0, e.GetInt32("Queued") ?? 0, e.GetBoolean("Done") ?? false, e.GetDateTimeOffset("LeaseUntil") ?? default,
                e.GetString("Refusal"), e.ETag);
        }
        catch (RequestFailedException e) when (e.Status == 404) { return null; } // no table yet
    }

    private async Task<Entry?> TryWriteAsync(string tenant, string key, Entry entry, ETag? expected, CancellationToken ct)
    {
        var entity = new TableEntity(tenant, RowOf(key))
        {
            ["BodyHash"] = entry.BodyHash, ["Started"] = entry.Started, ["Salt"] = entry.Salt, ["Messages"] = entry.Messages,
            ["Queued"] = entry.Queued, ["Done"] = entry.Done, ["LeaseUntil"] = entry.LeaseUntil, ["Refusal"] = entry.Refusal,
        };
        try
        {
            Interlocked.Increment(ref _requests);
            var response = expected is { } etag && etag != default
                ? await table.UpdateEntityAsync(entity, etag, TableUpdateMode.Replace, ct)
                : await CreateOnFirstUse.WriteAsync(() => table.AddEntityAsync(entity, ct),
                    () => { Interlocked.Increment(ref _requests); return table.CreateIfNotExistsAsync(ct); });
            return entry with { ETag = response.Headers.ETag ?? default };
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412) { return null; }
    }

    /// <summary>Deletes the records older than the key lifetime; returns how many.</summary>
    public async Task<int> SweepAsync(CancellationToken ct = default)
    {
        var cutoff = clock.GetUtcNow() - lifetime;
        var deleted = 0;
        try
        {
            await foreach (var old in table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"Started lt {cutoff}"), select: ["PartitionKey", "RowKey"], cancellationToken: ct))
            {
                await table.DeleteEntityAsync(old.PartitionKey, old.RowKey, ETag.All, ct);
                deleted++;
            }
        }
        catch (RequestFailedException e) when (e.Status == 404) { /* no table yet */ }
        return deleted;
    }

    // Keys are the client's text: hashed, so no character of it can break a table key and every key has one length.
    private static string RowOf(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    // Ids are made from milliseconds; the record keeps what the ids were made from.
    private static DateTimeOffset Truncated(DateTimeOffset t) => DateTimeOffset.FromUnixTimeMilliseconds(t.ToUnixTimeMilliseconds());
}

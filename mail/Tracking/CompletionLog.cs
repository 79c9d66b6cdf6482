using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Storage;

namespace Mta.Mail.Tracking;

/// <summary>
/// Records of finished delivery attempts, so that a job seen again — its queue message delivered a second time after a
/// worker died, or its twin from a cleanup that ran twice — is recognised and not delivered twice. One Azure Table
/// entity per attempt: a table per arrival day (<c>mtadone20261128</c>, dropped whole once no job of that day can
/// still be alive), partition = arrival hour, row = <c>{job id}.{attempt}</c>. Writes are group-committed: attempts
/// that finish while a write is under way go together in the next entity-group transaction (up to 100), so under load
/// a record costs a small fraction of a storage request. Only suspect jobs are looked up, so reads are rare.
/// </summary>
public sealed class CompletionLog
{
    /// <summary>Table names start with this, followed by the arrival day (yyyyMMdd).</summary>
    public const string TablePrefix = "mtadone";

    private const int MaxBatch = 100; // entity-group transaction limit

    private sealed record Pending(string Table, string Partition, string Row, TaskCompletionSource Done);

    private readonly TableServiceClient _service;
    private readonly MtaOptions _options;
    private readonly TimeProvider _clock;
    private readonly ILogger<CompletionLog> _log;
    private readonly Lock _gate = new();
    private List<Pending> _pending = [];
    private bool _flushing;
    private readonly HourlySweep _sweep;

    /// <summary>Creates the log for a storage account.</summary>
    public CompletionLog(StorageConnection storage, IOptions<MtaOptions> options, TimeProvider clock, ILogger<CompletionLog> log)
    {
        _service = storage.TableService();
        _options = options.Value;
        _clock = clock;
        _log = log;
        // Drops the tables of days whose mail can no longer be in any queue.
        _sweep = new HourlySweep(() => SweepAsync(), e => _log.LogWarning("warning: completion records sweep failed: {Error}", e.Message));
    }

    private static (string Table, string Partition, string Row) Key(DeliveryJob job)
    {
        var arrival = job.ArrivalTime.UtcDateTime;
        return (TablePrefix + arrival.ToString("yyyyMMdd", CultureInfo.InvariantCulture),
            arrival.ToString("yyyyMMddHH", CultureInfo.InvariantCulture), $"{job.JobId}.{job.Attempt}");
    }

    /// <summary>Records that this attempt of <paramref name="job"/> has done all it will do (its follow-up jobs are queued).</summary>
    public Task RecordAsync(DeliveryJob job, CancellationToken ct = default)
    {
        if (job.JobId.Length == 0) return Task.CompletedTask;
        var (table, partition, row) = Key(job);
        var pending = new Pending(table, partition, row, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        var start = false;
        lock (_gate)
        {
            _pending.Add(pending);
            if (!_flushing) _flushing = start = true;
        }
        if (start) _ = Task.Run(FlushAsync, CancellationToken.None);
        _sweep.Maybe();
        return pending.Done.Task.WaitAsync(ct);
    }

    /// <summary>Whether this attempt of <paramref name="job"/> was recorded as finished.</summary>
    public async Task<bool> IsRecordedAsync(DeliveryJob job, CancellationToken ct = default)
    {
        if (job.JobId.Length == 0) return false;
        var (table, partition, row) = Key(job);
        try
        {
            var entity = await _service.GetTableClient(table).GetEntityIfExistsAsync<TableEntity>(partition, row, ["PartitionKey"], ct);
            return entity.HasValue;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return false; // no table for that day yet
        }
    }

    /// <summary>
    /// Claims the first attempt of a <see cref="DeliveryJob.Claim"/> job, for mail that may have a twin (an injection
    /// retried under its idempotency key): true when this job may deliver — it wrote the claim, or the claim is its own
    /// (its queue message came back) — and false when a twin with another nonce claimed it first. One insert per job;
    /// the twin that loses is skipped even while the winner is still delivering, which the completion record alone
    /// cannot see.
    /// </summary>
    public async Task<bool> TryClaimAsync(DeliveryJob job, CancellationToken ct = default)
    {
        if (job.Claim is null || job.JobId.Length == 0) return true;
        var (table, partition, row) = Key(job);
        var client = _service.GetTableClient(table);
        var entity = new TableEntity(partition, row + ".claim") { ["Nonce"] = job.Claim };
        try
        {
            await CreateOnFirstUse.WriteAsync(() => client.AddEntityAsync(entity, ct), () => client.CreateIfNotExistsAsync(ct));
            return true;
        }
        catch (RequestFailedException e) when (e.Status == 409)
        {
            var held = await client.GetEntityAsync<TableEntity>(partition, row + ".claim", ["Nonce"], ct);
            return held.Value.GetString("Nonce") == job.Claim;
        }
    }

    // One writer at a time; whatever piled up meanwhile goes in the next transactions.
    private async Task FlushAsync()
    {
        while (true)
        {
            List<Pending> batch;
            lock (_gate)
            {
                if (_pending.Count == 0)
                {
                    _flushing = false;
                    return;
                }
                batch = _pending;
                _pending = [];
            }
            foreach (var group in batch.GroupBy(p => (p.Table, p.Partition)))
                foreach (var chunk in group.DistinctBy(p => p.Row).Chunk(MaxBatch))
                {
                    try
                    {
                        await SubmitAsync(group.Key.Table, chunk);
                        foreach (var p in group.Where(p => chunk.Any(c => c.Row == p.Row))) p.Done.TrySetResult();
                    }
                    catch (Exception e)
                    {
                        foreach (var p in group.Where(p => chunk.Any(c => c.Row == p.Row))) p.Done.TrySetException(e);
                    }
                }
        }
    }

    private async Task SubmitAsync(string tableName, IReadOnlyList<Pending> chunk)
    {
        var table = _service.GetTableClient(tableName);
        // Upserts: writing a record twice (a retried attempt) is harmless.
        var actions = chunk.Select(p => new TableTransactionAction(TableTransactionActionType.UpsertReplace,
            new TableEntity(p.Partition, p.Row))).ToList();
        // The first record of a new arrival day creates its table.
        await CreateOnFirstUse.WriteAsync(() => WriteAsync(table, actions), () => table.CreateIfNotExistsAsync());
    }

    private static async Task WriteAsync(TableClient table, List<TableTransactionAction> actions)
    {
        if (actions.Count == 1) await table.UpsertEntityAsync((TableEntity)actions[0].Entity, TableUpdateMode.Replace);
        else await table.SubmitTransactionAsync(actions);
    }

    /// <summary>
    /// Deletes the record tables of arrival days older than the queue lifetime plus two days (by then every job of
    /// that day has been delivered, bounced or expired); returns how many were deleted.
    /// </summary>
    public async Task<int> SweepAsync(CancellationToken ct = default)
    {
        var cutoff = _clock.GetUtcNow().UtcDateTime.Date - TimeSpan.FromSeconds(_options.MaximalQueueLifetimeSeconds) - TimeSpan.FromDays(2);
        var deleted = 0;
        await foreach (var table in _service.QueryAsync(t => t.Name.CompareTo(TablePrefix) >= 0 && t.Name.CompareTo(TablePrefix + "a") < 0, cancellationToken: ct))
        {
            if (!DateTime.TryParseExact(table.Name[TablePrefix.Length..], "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var day)
                || day >= cutoff) continue;
            await _service.DeleteTableAsync(table.Name, ct);
            deleted++;
        }
        return deleted;
    }
}

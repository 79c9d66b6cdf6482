using System.Text;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Queues.Models;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Storage;

namespace Mta.Mail.Tracking;

/// <summary>
/// The index of mail that waits — deferred jobs (invisible on their queue until due) and held jobs — which a queue
/// cannot list: Azure Queues show only visible messages, 32 at a time, and have no lookup by id. One Azure Table entity
/// per waiting job (partition = state, row = job id) with the job itself, the reason it waits, when it is due, and the
/// queue message's id and pop receipt, which let an operator make it due now or delete it without receiving it.
/// Written only when mail waits, so mail delivered on its first attempt costs nothing here.
/// </summary>
public sealed class WaitingMail(StorageConnection storage)
{
    /// <summary>The table's name.</summary>
    public const string TableName = "mtawaiting";

    /// <summary>State of a deferred job (on the <c>deferred</c> queue).</summary>
    public const string Deferred = "deferred";

    /// <summary>State of a held job (on the <c>hold</c> queue).</summary>
    public const string Held = "hold";

    // A table property holds at most 64 KiB: the job's JSON is split over as many as it needs.
    private const int Chunk = 60 * 1024;

    private readonly TableClient _table = storage.TableService().GetTableClient(TableName);

    /// <summary>Records a job that now waits in <paramref name="state"/>, replacing an older entry for it.</summary>
    public async Task PutAsync(string state, DeliveryJob job, SendReceipt receipt, string? reason, DateTimeOffset? due, CancellationToken ct = default)
    {
        var json = Encoding.UTF8.GetBytes(QueueJson.Serialize(job));
        var entity = new TableEntity(state, job.JobId)
        {
            ["MessageId"] = job.MessageId,
            ["Sender"] = job.Sender,
            ["Recipients"] = string.Join(' ', job.Recipients),
            ["ArrivalTime"] = job.ArrivalTime,
            ["Size"] = job.Size,
            ["Reason"] = reason,
            ["Due"] = due,
            ["Attempt"] = job.Attempt,
            ["QueueMessageId"] = receipt.MessageId,
            ["PopReceipt"] = receipt.PopReceipt,
            ["Chunks"] = (json.Length + Chunk - 1) / Chunk,
        };
        for (var i = 0; i * Chunk < json.Length; i++)
            entity[$"Job{i}"] = json.AsSpan(i * Chunk, Math.Min(Chunk, json.Length - i * Chunk)).ToArray();
        await CreateOnFirstUse.WriteAsync(() => _table.UpsertEntityAsync(entity, TableUpdateMode.Replace, ct), () => _table.CreateIfNotExistsAsync(ct));
    }

    /// <summary>Forgets a job in <paramref name="state"/> (it was delivered, bounced, released or deleted).</summary>
    public async Task RemoveAsync(string state, string jobId, CancellationToken ct = default)
    {
        try { await _table.DeleteEntityAsync(state, jobId, ETag.All, ct); }
        catch (RequestFailedException e) when (e.Status == 404) { /* gone already, or no table yet */ }
    }

    /// <summary>Every waiting job, or those in one state, oldest arrival first.</summary>
    public async Task<IReadOnlyList<WaitingJob>> ListAsync(string? state = null, CancellationToken ct = default)
    {
        var list = new List<WaitingJob>();
        try
        {
            var query = state is null ? _table.QueryAsync<TableEntity>(cancellationToken: ct)
                : _table.QueryAsync<TableEntity>(e => e.PartitionKey == state, cancellationToken: ct);
            await foreach (var e in query) list.Add(From(e));
        }
        catch (RequestFailedException e) when (e.Status == 404) { }
        return list.OrderBy(j => j.Job.ArrivalTime).ThenBy(j => j.Job.JobId, StringComparer.Ordinal).ToList();
    }

    /// <summary>The waiting jobs of a message (by queue id) or the one job (by job id).</summary>
    public async Task<IReadOnlyList<WaitingJob>> FindAsync(string id, CancellationToken ct = default)
        => (await ListAsync(null, ct)).Where(j => j.Job.MessageId == id || j.Job.JobId == id).ToList();

    private static WaitingJob From(TableEntity e)
    {
        var chunks = e.GetInt32("Chunks") ?? 0;
        var json = Enumerable.Range(0, chunks).SelectMany(i => e.GetBinary($"Job{i}") ?? []).ToArray();
        return new WaitingJob(e.PartitionKey, QueueJson.Deserialize<DeliveryJob>(Encoding.UTF8.GetString(json)),
            e.GetString("Reason"), e.GetDateTimeOffset("Due"), e.GetString("QueueMessageId") ?? "", e.GetString("PopReceipt") ?? "");
    }
}

/// <summary>A job that waits.</summary>
/// <param name="State"><see cref="WaitingMail.Deferred"/> or <see cref="WaitingMail.Held"/>.</param>
/// <param name="Job">The job as it sits on its queue.</param>
/// <param name="Reason">Why it waits: the last delivery error, or the check that held it.</param>
/// <param name="Due">When a deferred job is tried again.</param>
/// <param name="QueueMessageId">Its queue message's id.</param>
/// <param name="PopReceipt">The pop receipt that lets its queue message be changed or deleted unseen.</param>
public sealed record WaitingJob(string State, DeliveryJob Job, string? Reason, DateTimeOffset? Due, string QueueMessageId, string PopReceipt);

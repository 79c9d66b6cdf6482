using Azure;
using Azure.Data.Tables;

namespace Mta.Ingress.Policy;

/// <summary>
/// The per-client rate schedules every ingress replica shares: one Azure Table entity per (event, client) in table
/// <c>mtaclientrates</c>, holding <see cref="RateBudget"/>'s <c>Tat</c>, changed only with ETag-checked writes, as the
/// delivery stage's traffic shaping keeps its per-site rates (<c>mtashaping</c>).
/// </summary>
public sealed class SharedRateTable(TableClient table)
{
    /// <summary>The table's name.</summary>
    public const string TableName = "mtaclientrates";

    private const string Row = "rate";

    /// <summary>A schedule as read or written, with what the next write must match.</summary>
    /// <param name="Tat">The theoretical arrival time (UTC ticks); 0 when there is none yet.</param>
    /// <param name="ETag">The entity's version; null when it does not exist.</param>
    public sealed record Schedule(long Tat, ETag? ETag);

    /// <summary>Storage requests made, for the figures in docs/benchmarks.md.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    private long _requests;

    /// <summary>Reads a schedule (empty when there is none).</summary>
    public async Task<Schedule> ReadAsync(string key, CancellationToken ct)
    {
        Interlocked.Increment(ref _requests);
        try
        {
            var found = await table.GetEntityIfExistsAsync<TableEntity>(Key(key), Row, ["Tat"], ct);
            return found.HasValue ? new Schedule(found.Value!.GetInt64("Tat") ?? 0, found.Value.ETag) : new Schedule(0, null);
        }
        catch (RequestFailedException e) when (e.Status == 404) { return new Schedule(0, null); } // no table yet
    }

    /// <summary>Writes <paramref name="tat"/> if the schedule is still <paramref name="seen"/>; null when another replica wrote first.</summary>
    public async Task<Schedule?> TryWriteAsync(string key, Schedule seen, long tat, CancellationToken ct)
    {
        var entity = new TableEntity(Key(key), Row) { ["Tat"] = tat };
        try
        {
            Interlocked.Increment(ref _requests);
            var response = seen.ETag is { } etag
                ? await table.UpdateEntityAsync(entity, etag, TableUpdateMode.Replace, ct)
                : await AddAsync(entity, ct);
            return new Schedule(tat, response.Headers.ETag);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412) { return null; }
    }

    private Task<Response> AddAsync(TableEntity entity, CancellationToken ct) => Mta.Mail.Storage.CreateOnFirstUse.WriteAsync(
        () => table.AddEntityAsync(entity, ct),
        () => { Interlocked.Increment(ref _requests); return table.CreateIfNotExistsAsync(ct); });

    // Table keys may not hold '/', '\', '#' or '?': an IPv6 group's "/64" becomes "_64".
    private static string Key(string key) => key.Replace('/', '_');
}

using Azure;
using Azure.Data.Tables;

namespace Mta.Mail.Shaping;

/// <summary>
/// What all replicas share about a site besides its slots, in one Azure Table entity per site (table <c>mtashaping</c>,
/// partition = site key) changed only with ETag-checked writes:
/// <list type="bullet">
/// <item>the message rate, as a generic cell rate algorithm: <c>Tat</c> is the time the site's send budget is spent
/// up to. A replica takes a few sends at once (moving <c>Tat</c> on by that many intervals) and spends them locally,
/// so a rate costs one write per few messages, and no replica can send ahead of the shared schedule;</item>
/// <item>throttling feedback: <c>Factor</c> (0–1] scales the site's concurrency and rate, halved by a throttling reply
/// (<c>ThrottledAt</c>) and growing back by a tenth per recovery period. Recovery is computed from the time, so it
/// costs no writes.</item>
/// </list>
/// Clocks of replicas are assumed to agree to well under a second (NTP); skew only shifts the schedule by as much.
/// </summary>
public sealed class SiteStates(TableClient table)
{
    /// <summary>The table's name.</summary>
    public const string TableName = "mtashaping";

    /// <summary>The lowest the feedback takes a site's factor.</summary>
    public const double MinimalFactor = 1.0 / 64;

    private const string Row = "state";
    private readonly TableClient _table = table;
    private bool _tableReady;

    /// <summary>One site's state as last read or written by this replica, with its ETag.</summary>
    public sealed class Snapshot
    {
        internal ETag ETag;
        internal bool Exists;

        /// <summary>Theoretical arrival time (UTC ticks): sends are scheduled up to here.</summary>
        public long Tat { get; internal set; }

        /// <summary>The factor set by the last throttling reply.</summary>
        public double Factor { get; internal set; } = 1;

        /// <summary>When the last throttling reply lowered the factor.</summary>
        public DateTimeOffset ThrottledAt { get; internal set; } = DateTimeOffset.MinValue;

        /// <summary>When this replica read or wrote it.</summary>
        public DateTimeOffset ReadAt { get; internal set; } = DateTimeOffset.MinValue;

        /// <summary>The factor now: the last one plus a tenth per <paramref name="recovery"/> since, at most 1.</summary>
        public double FactorAt(DateTimeOffset now, TimeSpan recovery)
        {
            if (Factor >= 1 || ThrottledAt == DateTimeOffset.MinValue) return 1;
            var periods = Math.Floor((now - ThrottledAt) / recovery);
            return Math.Min(1, Factor + 0.1 * Math.Max(0, periods));
        }
    }

    /// <summary>Reads a site's state (a fresh snapshot when the site has none yet).</summary>
    public async Task<Snapshot> ReadAsync(string site, DateTimeOffset now, CancellationToken ct)
    {
        var snapshot = new Snapshot { ReadAt = now };
        NullableResponse<TableEntity> found;
        try
        {
            found = await _table.GetEntityIfExistsAsync<TableEntity>(site, Row, cancellationToken: ct);
        }
        catch (RequestFailedException failed) when (failed.Status == 404)
        {
            return snapshot; // no table yet
        }
        if (!found.HasValue) return snapshot;
        var e = found.Value!;
        snapshot.Exists = true;
        snapshot.ETag = e.ETag;
        snapshot.Tat = e.GetInt64("Tat") ?? 0;
        snapshot.Factor = e.GetDouble("Factor") ?? 1;
        snapshot.ThrottledAt = e.GetDateTimeOffset("ThrottledAt") ?? DateTimeOffset.MinValue;
        return snapshot;
    }

    /// <summary>
    /// Writes <paramref name="next"/> if the site still is as <paramref name="seen"/> was read; false when another replica
    /// wrote in between (read again and decide again). On success <paramref name="next"/> carries the new ETag.
    /// </summary>
    public async Task<bool> TryWriteAsync(string site, string name, Snapshot seen, Snapshot next, CancellationToken ct)
    {
        var entity = new TableEntity(site, Row)
        {
            ["Tat"] = next.Tat,
            ["Factor"] = next.Factor,
            ["ThrottledAt"] = next.ThrottledAt == DateTimeOffset.MinValue ? null : next.ThrottledAt,
            ["Site"] = name,
        };
        try
        {
            Response response;
            if (seen.Exists) response = await _table.UpdateEntityAsync(entity, seen.ETag, TableUpdateMode.Replace, ct);
            else response = await AddAsync(entity, ct);
            next.ETag = response.Headers.ETag ?? default;
            next.Exists = true;
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            return false;
        }
    }

    private async Task<Response> AddAsync(TableEntity entity, CancellationToken ct)
    {
        if (!_tableReady)
        {
            await _table.CreateIfNotExistsAsync(ct);
            _tableReady = true;
        }
        return await _table.AddEntityAsync(entity, ct);
    }
}

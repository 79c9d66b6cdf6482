using System.Collections.Concurrent;
using System.Net;
using Azure;
using Azure.Data.Tables;

namespace Mta.Ingress.Screening;

/// <summary>
/// postscreen's cache of clients that passed (<c>postscreen_cache_map</c>), shared by every ingress replica: one Azure
/// Table entity per client address (table <c>mtapostscreen</c>) with the time its pass runs out, so a client that
/// passed on one replica is not paused on another. In front of it, each replica remembers what it read or wrote, and
/// that it found nothing, for a minute: a client seen in the last minute costs no storage request.
/// A storage failure only means the client is tested again.
/// </summary>
public sealed class PassCache(TableClient? table, TimeProvider clock)
{
    /// <summary>The table's name.</summary>
    public const string TableName = "mtapostscreen";

    /// <summary>Most clients each replica remembers; past it, it starts over (bounded memory under a flood of addresses).</summary>
    internal const int LocalLimit = 100_000;

    private static readonly TimeSpan MissMemory = TimeSpan.FromMinutes(1);
    private const string Row = "pass";
    private readonly ConcurrentDictionary<string, DateTimeOffset> _passed = new();
    private readonly ConcurrentDictionary<string, DateTimeOffset> _missed = new();

    /// <summary>Storage requests made, for the figures in docs/benchmarks.md.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    private long _requests;

    /// <summary>Whether <paramref name="client"/> passed and its pass still holds.</summary>
    public async Task<bool> PassedAsync(IPAddress client, CancellationToken ct)
    {
        var key = Key(client);
        var now = clock.GetUtcNow();
        if (_passed.TryGetValue(key, out var until) && until > now) return true;
        if (_missed.TryGetValue(key, out var missedAt) && now - missedAt < MissMemory) return false;
        until = await ReadAsync(key, ct) ?? DateTimeOffset.MinValue;
        if (until > now) Remember(_passed, key, until);
        else Remember(_missed, key, now);
        return until > now;
    }

    /// <summary>Records that <paramref name="client"/> passed, until <paramref name="until"/>.</summary>
    public async Task RememberAsync(IPAddress client, DateTimeOffset until, CancellationToken ct)
    {
        var key = Key(client);
        Remember(_passed, key, until);
        _missed.TryRemove(key, out _);
        if (table is null) return;
        var entity = new TableEntity(key, Row) { ["Expires"] = until };
        try
        {
            Interlocked.Increment(ref _requests);
            await UpsertAsync(entity, ct);
        }
        catch (RequestFailedException) { /* the next replica that sees the client tests it again: no harm */ }
    }

    private async Task<DateTimeOffset?> ReadAsync(string key, CancellationToken ct)
    {
        if (table is null) return null;
        try
        {
            Interlocked.Increment(ref _requests);
            var found = await table.GetEntityIfExistsAsync<TableEntity>(key, Row, ["Expires"], ct);
            return found.HasValue ? found.Value!.GetDateTimeOffset("Expires") : null;
        }
        catch (RequestFailedException) { return null; } // no table yet, or storage down: test the client
    }

    private Task UpsertAsync(TableEntity entity, CancellationToken ct) => Mta.Mail.Storage.CreateOnFirstUse.WriteAsync(
        () => table!.UpsertEntityAsync(entity, TableUpdateMode.Replace, ct),
        () => { Interlocked.Increment(ref _requests); return table!.CreateIfNotExistsAsync(ct); });

    private static void Remember(ConcurrentDictionary<string, DateTimeOffset> map, string key, DateTimeOffset value)
    {
        if (map.Count >= LocalLimit) map.Clear();
        map[key] = value;
    }

    // Table keys may not hold '/', '\', '#' or '?'; an address has none of them.
    private static string Key(IPAddress client) => (client.IsIPv4MappedToIPv6 ? client.MapToIPv4() : client).ToString();
}

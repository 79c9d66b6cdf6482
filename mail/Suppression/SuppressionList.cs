using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Data.Tables;
using Mta.Mail.Configuration;
using Mta.Mail.Storage;

namespace Mta.Mail.Suppression;

/// <summary>One suppressed address.</summary>
/// <param name="Tenant">Whose list (<see cref="SuppressionList.NoTenant"/> for mail without a tenant).</param>
/// <param name="Address">The address, as first suppressed.</param>
/// <param name="Category">Why: a bounce category (<c>invalid_recipient</c>, …), <c>complaint</c>, or <c>manual</c>.</param>
/// <param name="Added">When.</param>
/// <param name="Expires">When it stops applying; null: never.</param>
/// <param name="Reason">The reply or note that put it there.</param>
public sealed record SuppressionEntry(string Tenant, string Address, string Category, DateTimeOffset Added, DateTimeOffset? Expires, string? Reason);

/// <summary>
/// The suppression list: addresses mail is no longer sent to, per tenant, in table <c>mtasuppression</c> (partition =
/// tenant, row = SHA-256 of the lower-cased address, so any address is a valid key). Hard bounces of the categories
/// in <see cref="MtaOptions.SuppressionLifetimes"/> add to it, operators add and remove with <c>mtactl suppression</c>;
/// cleanup drops suppressed recipients of the tenant's mail. An entry's lifetime comes from its category.
/// </summary>
public sealed class SuppressionList(StorageConnection storage, Microsoft.Extensions.Options.IOptions<MtaOptions> options, TimeProvider clock)
{
    /// <summary>The table's name.</summary>
    public const string TableName = "mtasuppression";

    /// <summary>The partition of mail without a tenant.</summary>
    public const string NoTenant = "_";

    private readonly TableClient _table = storage.TableService().GetTableClient(TableName);
    private readonly IReadOnlyDictionary<string, TimeSpan?> _lifetimes = ParseLifetimes(options.Value.SuppressionLifetimes);

    /// <summary>Whether suppression is on.</summary>
    public bool Enabled => options.Value.Suppression;

    /// <summary>
    /// <c>category=days</c> pairs (<c>0</c>: never expires): which categories suppress automatically, and for how long;
    /// <c>manual</c> and <c>complaint</c> name the lifetimes of entries added by hand and by complaints.
    /// </summary>
    public static IReadOnlyDictionary<string, TimeSpan?> ParseLifetimes(string? text)
    {
        var lifetimes = new Dictionary<string, TimeSpan?>(StringComparer.Ordinal);
        foreach (var pair in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (pair.Split('=', 2) is not [var category, var days] || !int.TryParse(days, out var n) || n < 0)
                throw new FormatException($"'{pair}' is not category=days (0: never expires)");
            lifetimes[category.Trim().ToLowerInvariant()] = n == 0 ? null : TimeSpan.FromDays(n);
        }
        return lifetimes;
    }

    /// <summary>Whether a hard bounce of <paramref name="category"/> suppresses its address.</summary>
    public bool Suppresses(string category) => _lifetimes.ContainsKey(category);

    /// <summary>The rule apart from storage: whether <paramref name="entry"/> still applies at <paramref name="now"/>.</summary>
    public static bool Applies(SuppressionEntry? entry, DateTimeOffset now) => entry is not null && (entry.Expires is null || now < entry.Expires);

    /// <summary>The entry for <paramref name="address"/> in <paramref name="tenant"/>'s list, when it still applies.</summary>
    public async Task<SuppressionEntry?> FindAsync(string? tenant, string address, CancellationToken ct = default)
    {
        try
        {
            var found = await _table.GetEntityIfExistsAsync<TableEntity>(tenant ?? NoTenant, RowOf(address), cancellationToken: ct);
            var entry = found.HasValue ? EntryOf(found.Value!) : null;
            return Applies(entry, clock.GetUtcNow()) ? entry : null;
        }
        catch (RequestFailedException e) when (e.Status == 404) { return null; } // no table yet
    }

    /// <summary>Adds (or renews) an entry; its lifetime is its category's, or <paramref name="expires"/> when given.</summary>
    public Task AddAsync(string? tenant, string address, string category, string? reason, CancellationToken ct = default, DateTimeOffset? expires = null)
    {
        var now = clock.GetUtcNow();
        var lifetime = _lifetimes.GetValueOrDefault(category);
        var entity = Entity(new SuppressionEntry(tenant ?? NoTenant, address, category, now, expires ?? (lifetime is { } l ? now + l : null), reason));
        return CreateOnFirstUse.WriteAsync(() => _table.UpsertEntityAsync(entity, TableUpdateMode.Replace, ct), () => _table.CreateIfNotExistsAsync(ct));
    }

    /// <summary>Removes an entry; false when there was none.</summary>
    public async Task<bool> RemoveAsync(string? tenant, string address, CancellationToken ct = default)
    {
        // The SDK answers a delete of nothing with its 404, not an exception.
        try { return (await _table.DeleteEntityAsync(tenant ?? NoTenant, RowOf(address), ETag.All, ct)).Status != 404; }
        catch (RequestFailedException e) when (e.Status == 404) { return false; }
    }

    /// <summary>Every entry (of one tenant when given), expired ones included.</summary>
    public async IAsyncEnumerable<SuppressionEntry> ListAsync(string? tenant, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        var query = tenant is null ? _table.QueryAsync<TableEntity>(cancellationToken: ct)
            : _table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {tenant}"), cancellationToken: ct);
        var pages = query.AsPages().GetAsyncEnumerator(ct);
        while (true)
        {
            Page<TableEntity> page;
            try
            {
                if (!await pages.MoveNextAsync()) yield break;
                page = pages.Current;
            }
            catch (RequestFailedException e) when (e.Status == 404) { yield break; }
            foreach (var e in page.Values) yield return EntryOf(e);
        }
    }

    private static string RowOf(string address) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(address.Trim().ToLowerInvariant())));

    private static TableEntity Entity(SuppressionEntry e) => new(e.Tenant, RowOf(e.Address))
    {
        ["Address"] = e.Address, ["Category"] = e.Category, ["Added"] = e.Added, ["Expires"] = e.Expires, ["Reason"] = e.Reason,
    };

    private static SuppressionEntry EntryOf(TableEntity e) => new(e.PartitionKey, e.GetString("Address") ?? "", e.GetString("Category") ?? "",
        e.GetDateTimeOffset("Added") ?? default, e.GetDateTimeOffset("Expires"), e.GetString("Reason"));
}

using Azure;
using Azure.Data.Tables;
using Mta.Mail.Configuration;
using Mta.Mail.Storage;

namespace Mta.Mail.Spool;

/// <summary>
/// Who still needs a spooled message's blob: its open delivery jobs and the reports waiting to quote it (the store
/// behind <see cref="SpoolLifetime"/>, which says when a reference is added and removed). One Azure Table entity per
/// spooled message (partition = queue id) holding the set of open references, changed with ETag-checked writes so
/// replicas never lose each other's updates. Adding and removing are set operations, so repeating one after a crash
/// changes nothing. When the set becomes empty the entity is deleted and the blob may go. Only the lifetime owner
/// changes a set (its methods for that are internal); anyone may look.
/// </summary>
public sealed class SpoolReferences(StorageConnection storage)
{
    /// <summary>The table's name.</summary>
    public const string TableName = "mtaspool";

    private const string Row = "refs";
    private readonly TableClient _table = storage.TableService().GetTableClient(TableName);

    /// <summary>
    /// Opens the set for a message with its first references, before any job that holds one is queued. If the set
    /// exists already (cleanup running again for the same message) it is left as it is: its jobs are the same.
    /// </summary>
    internal async Task OpenAsync(string messageId, IEnumerable<string> references, CancellationToken ct = default)
    {
        var entity = new TableEntity(messageId, Row) { ["Open"] = string.Join(' ', references) };
        try
        {
            await AddAsync(entity, ct);
        }
        catch (RequestFailedException e) when (e.Status == 409)
        {
            // Opened by an earlier run of cleanup for this message.
        }
    }

    private Task AddAsync(TableEntity entity, CancellationToken ct)
        => CreateOnFirstUse.WriteAsync(() => _table.AddEntityAsync(entity, ct), () => _table.CreateIfNotExistsAsync(ct));

    /// <summary>
    /// Adds and removes references. True when the set is now empty (and gone): the message's blob may be deleted.
    /// False when references remain, or when the message has no set (inline, or closed before).
    /// </summary>
    internal async Task<bool> UpdateAsync(string messageId, IReadOnlyCollection<string> add, IReadOnlyCollection<string> remove, CancellationToken ct = default)
    {
        if (add.Count == 0 && remove.Count == 0) return false;
        for (var attempt = 0; ; attempt++)
        {
            NullableResponse<TableEntity> current;
            try { current = await _table.GetEntityIfExistsAsync<TableEntity>(messageId, Row, cancellationToken: ct); }
            catch (RequestFailedException e) when (e.Status == 404) { return false; }
            if (!current.HasValue) return false;
            var entity = current.Value!;
            var open = new HashSet<string>((entity.GetString("Open") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
            open.UnionWith(add);
            open.ExceptWith(remove);
            try
            {
                if (open.Count == 0)
                {
                    await _table.DeleteEntityAsync(messageId, Row, entity.ETag, ct);
                    return true;
                }
                entity["Open"] = string.Join(' ', open);
                await _table.UpdateEntityAsync(entity, entity.ETag, TableUpdateMode.Replace, ct);
                return false;
            }
            catch (RequestFailedException e) when (e.Status == 412 && attempt < 50)
            {
                // Another replica changed the set in between: read it again.
            }
        }
    }

    /// <summary>The open references of a message, or null when it has no set (for tests and operators).</summary>
    public async Task<IReadOnlySet<string>?> OpenReferencesAsync(string messageId, CancellationToken ct = default)
    {
        try
        {
            var current = await _table.GetEntityIfExistsAsync<TableEntity>(messageId, Row, cancellationToken: ct);
            return current.HasValue ? (current.Value!.GetString("Open") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet() : null;
        }
        catch (RequestFailedException e) when (e.Status == 404) { return null; }
    }
}

using System.Collections.Concurrent;

namespace Mta.Tests.Peers;

/// <summary>
/// The storage account as one identity sees it: Azurite's blob, queue and table services behind recording relays,
/// and a connection string that names the relays. Give each part of the MTA a recorder of its own, and
/// <see cref="Requests"/> is what that part did to storage.
/// </summary>
public sealed class StorageRecorder : IAsyncDisposable
{
    private readonly ConcurrentQueue<StorageRequest> _requests = new();
    private readonly RecordingRelay _blob;
    private readonly RecordingRelay _queue;
    private readonly RecordingRelay _table;

    /// <summary>Relays to <paramref name="azurite"/>.</summary>
    public StorageRecorder(Azurite azurite)
    {
        _blob = new RecordingRelay(StorageService.Blob, azurite.BlobPort, _requests);
        _queue = new RecordingRelay(StorageService.Queue, azurite.QueuePort, _requests);
        _table = new RecordingRelay(StorageService.Table, azurite.TablePort, _requests);
    }

    /// <summary>A connection string whose endpoints are this recorder's relays.</summary>
    public string ConnectionString => Azurite.ConnectionStringFor(_blob.Port, _queue.Port, _table.Port);

    /// <summary>Every request so far, in the order they were read.</summary>
    public IReadOnlyList<StorageRequest> Requests => _requests.ToArray();

    /// <summary>Stops the relays.</summary>
    public async ValueTask DisposeAsync()
    {
        await _blob.DisposeAsync();
        await _queue.DisposeAsync();
        await _table.DisposeAsync();
    }
}

using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Mta.Mail.Configuration;
using Mta.Mail.Storage;

namespace Mta.Mail.Spool;

/// <summary>
/// Message bytes in Blob storage (the claim check: queue messages carry only the blob name,
/// since a queue message holds at most 64 KiB). Blobs are written once and never modified.
/// </summary>
public sealed class MessageSpool
{
    /// <summary>The container that holds spooled messages.</summary>
    public const string ContainerName = "spool";

    private readonly BlobContainerClient _container;

    /// <summary>Opens the spool in a storage account.</summary>
    public MessageSpool(StorageConnection storage, BlobClientOptions? options = null)
    {
        _container = storage.Container(ContainerName, options);
    }

    /// <summary>Creates the container if needed.</summary>
    public Task CreateIfNotExistsAsync(CancellationToken ct = default)
        => _container.CreateIfNotExistsAsync(cancellationToken: ct);

    /// <summary>Stores a message; fails if the name is taken (ids are unique, so a clash is a bug, not a retry).</summary>
    public async Task WriteAsync(string name, Stream content, CancellationToken ct = default)
    {
        var options = new BlobUploadOptions
        {
            Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            HttpHeaders = new BlobHttpHeaders { ContentType = "message/rfc822" },
        };
        if (!content.CanSeek)
        {
            await _container.GetBlobClient(name).UploadAsync(content, options, ct); // cannot be sent twice
            return;
        }
        var start = content.Position;
        await CreateOnFirstUse.WriteAsync(() =>
        {
            content.Position = start;
            return _container.GetBlobClient(name).UploadAsync(content, options, ct);
        }, () => _container.CreateIfNotExistsAsync(cancellationToken: ct));
    }

    /// <summary>
    /// Stores one block of a large message (uncommitted: invisible until <see cref="CommitBlocksAsync"/>;
    /// storage discards uncommitted blocks after a week, so a message refused mid-way leaves nothing behind).
    /// </summary>
    public async Task StageBlockAsync(string name, int index, ReadOnlyMemory<byte> block, CancellationToken ct = default)
    {
        var blob = _container.GetBlockBlobClient(name);
        await CreateOnFirstUse.WriteAsync(() => blob.StageBlockAsync(BlockId(index), AsStream(block), cancellationToken: ct),
            () => _container.CreateIfNotExistsAsync(cancellationToken: ct));
    }

    // The block as a stream over its own bytes (no copy); the upload is over before the caller reuses them.
    private static MemoryStream AsStream(ReadOnlyMemory<byte> block)
        => System.Runtime.InteropServices.MemoryMarshal.TryGetArray(block, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(block.ToArray(), writable: false);

    /// <summary>Makes blocks 0..count-1 the message, once: fails if the name is taken.</summary>
    public Task CommitBlocksAsync(string name, int count, CancellationToken ct = default)
        => _container.GetBlockBlobClient(name).CommitBlockListAsync(Enumerable.Range(0, count).Select(BlockId), new CommitBlockListOptions
        {
            Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            HttpHeaders = new BlobHttpHeaders { ContentType = "message/rfc822" },
        }, ct);

    // Block ids must all have the same length within a blob.
    private static string BlockId(int index) => Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes($"block-{index:D6}"));

    /// <summary>
    /// Opens a stored message as one streaming download: a single storage request (OpenRead would add a
    /// properties request first), and a reader that stops after the header transfers little more than that.
    /// </summary>
    public async Task<Stream> OpenReadAsync(string name, CancellationToken ct = default)
        => (await _container.GetBlobClient(name).DownloadStreamingAsync(cancellationToken: ct)).Value.Content;

    /// <summary>Opens part of a stored message: <paramref name="length"/> bytes from <paramref name="offset"/> (null: to the end).</summary>
    public async Task<Stream> OpenReadAsync(string name, long offset, long? length, CancellationToken ct = default)
        => (await _container.GetBlobClient(name).DownloadStreamingAsync(new BlobDownloadOptions { Range = new Azure.HttpRange(offset, length) }, ct)).Value.Content;

    /// <summary>Reads a stored message whole (for messages that are sent in one piece anyway).</summary>
    public async Task<byte[]> ReadAsync(string name, CancellationToken ct = default)
    {
        using var read = await ReadAsync(name, default, 0, ct);
        return read.Memory.ToArray();
    }

    /// <summary>
    /// Reads a stored message from <paramref name="offset"/> on, after <paramref name="prefix"/>, into one buffer
    /// rented at its final size (the download says its length), to be given back by disposing it once sent. Delivery
    /// reads every spooled message this way: a new array each time would be a large-object allocation per message,
    /// and the background collections those bring.
    /// </summary>
    public async Task<SpooledBytes> ReadAsync(string name, ReadOnlyMemory<byte> prefix, long offset, CancellationToken ct = default)
    {
        var options = offset > 0 ? new BlobDownloadOptions { Range = new HttpRange(offset) } : null;
        BlobDownloadStreamingResult download;
        try
        {
            download = (await _container.GetBlobClient(name).DownloadStreamingAsync(options, ct)).Value;
        }
        catch (RequestFailedException e) when (e.Status == 416 && offset > 0)
        {
            // Nothing after the offset: a message without a body.
            var header = new SpooledBytes(prefix.Length);
            prefix.CopyTo(header.Buffer);
            return header;
        }
        await using var content = download.Content;
        var all = new SpooledBytes(checked((int)(prefix.Length + download.Details.ContentLength)));
        try
        {
            prefix.CopyTo(all.Buffer);
            await content.ReadExactlyAsync(all.Buffer.AsMemory(prefix.Length, all.Length - prefix.Length), ct);
            return all;
        }
        catch
        {
            all.Dispose();
            throw;
        }
    }

    /// <summary>Removes a message; a missing blob is not an error (delete is idempotent).</summary>
    public Task DeleteAsync(string name, CancellationToken ct = default)
        => _container.GetBlobClient(name).DeleteIfExistsAsync(cancellationToken: ct);
}

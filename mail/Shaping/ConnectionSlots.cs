using System.Collections.Concurrent;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging;

namespace Mta.Mail.Shaping;

/// <summary>
/// Connection slots of every destination, shared by all delivery replicas through blob leases: slot <c>i</c> of a site
/// is the empty blob <c>mtashaping/{site}/{i}</c>, and whoever holds its lease may keep one connection open to the site.
/// A lease lasts <c>SlotLeaseSeconds</c> (15–60, Azure's range) and is renewed while its connection lives, so a replica
/// that dies without letting go blocks its slots for no longer than that. Leases need no coordination beyond the blob
/// service's own: two replicas can never hold the same slot.
/// </summary>
public sealed class ConnectionSlots : IAsyncDisposable
{
    /// <summary>The blob container holding the slot blobs.</summary>
    public const string ContainerName = "mtashaping";

    /// <summary>Slots tried per acquisition before giving up: bounds the storage requests a busy destination costs.</summary>
    private const int MaxProbes = 8;

    private readonly BlobContainerClient _container;
    private readonly TimeSpan _duration;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<(string Site, int Index), SlotLease> _held = new();
    private readonly ConcurrentDictionary<(string Site, int Index), byte> _probing = new();
    private readonly ITimer _renewal;
    private bool _containerReady;

    /// <summary>Slots in <paramref name="container"/>, leased for <paramref name="duration"/> at a time.</summary>
    public ConnectionSlots(BlobContainerClient container, TimeSpan duration, TimeProvider clock, ILogger log)
    {
        _container = container;
        _duration = duration;
        _log = log;
        _renewal = clock.CreateTimer(_ => _ = RenewAllAsync(), null, duration / 3, duration / 3);
    }

    /// <summary>Slots of <paramref name="site"/> this replica holds now.</summary>
    public int Held(string site) => _held.Keys.Count(k => k.Site == site);

    /// <summary>
    /// Leases a free slot below <paramref name="limit"/> for <paramref name="site"/>; null when the ones tried are all taken.
    /// <paramref name="released"/> runs when the lease is let go.
    /// </summary>
    public async Task<SlotLease?> TryAcquireAsync(string site, int limit, Action released, CancellationToken ct)
    {
        // First a low slot, so light traffic keeps using the same few slot blobs (each costs three requests to create,
        // once); then random ones, so replicas competing near the limit do not all queue up on the same low numbers.
        bool Free(int i) => !_held.ContainsKey((site, i)) && !_probing.ContainsKey((site, i));
        var free = Enumerable.Range(0, limit).Where(Free).ToList();
        var low = free.Where(i => i <= Held(site) + _probing.Keys.Count(k => k.Site == site) + 1).ToList();
        var first = low.Count > 0 ? low[Random.Shared.Next(low.Count)] : -1;
        var candidates = (first >= 0 ? [first] : new List<int>())
            .Concat(free.Where(i => i != first).OrderBy(_ => Random.Shared.Next())).Take(MaxProbes).ToList();
        foreach (var index in candidates)
        {
            // Tasks of this replica never probe the same slot at once: one of them would only be refused.
            if (!_probing.TryAdd((site, index), 0)) continue;
            try
            {
                if (_held.ContainsKey((site, index))) continue;
                var blob = _container.GetBlobClient($"{site}/{index}");
                var lease = blob.GetBlobLeaseClient(Guid.NewGuid().ToString());
                try
                {
                    await AcquireAsync(blob, lease, ct);
                }
                catch (RequestFailedException e) when (e.Status == 409)
                {
                    continue; // someone holds it
                }
                var slot = new SlotLease(this, site, index, lease, released);
                _held[(site, index)] = slot;
                return slot;
            }
            finally
            {
                _probing.TryRemove((site, index), out _);
            }
        }
        return null;
    }

    private async Task AcquireAsync(BlobClient blob, BlobLeaseClient lease, CancellationToken ct)
    {
        try
        {
            await lease.AcquireAsync(_duration, cancellationToken: ct);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // First use of this slot (or of the container): create the empty blob, then lease it.
            if (!_containerReady)
            {
                await _container.CreateIfNotExistsAsync(cancellationToken: ct);
                _containerReady = true;
            }
            try { await blob.UploadAsync(BinaryData.Empty, overwrite: false, ct); }
            catch (RequestFailedException c) when (c.Status == 409) { /* created by someone else */ }
            await lease.AcquireAsync(_duration, cancellationToken: ct);
        }
    }

    internal async Task ReleaseAsync(SlotLease slot)
    {
        slot.Releasing = true;
        try
        {
            if (!slot.Lost) await slot.Lease.ReleaseAsync();
        }
        catch (RequestFailedException) { /* expired or lost: the slot is free either way */ }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            _log.LogWarning("shaping: could not release slot {Index} of {Site} ({Error}); it frees itself within {Seconds}s",
                slot.Index, slot.Site, e.Message, (int)_duration.TotalSeconds);
        }
        finally
        {
            // Only now: until the release is through, trying this slot again would only be refused.
            _held.TryRemove(new KeyValuePair<(string, int), SlotLease>((slot.Site, slot.Index), slot));
        }
    }

    private async Task RenewAllAsync()
    {
        foreach (var slot in _held.Values)
        {
            if (slot.Releasing) continue;
            try
            {
                await slot.Lease.RenewAsync();
            }
            catch (Exception e) when (e is RequestFailedException or HttpRequestException)
            {
                // Let go meanwhile: nothing is lost.
                if (slot.Releasing) continue;
                // Storage was unreachable longer than the lease: another replica may have the slot now. The connection is
                // closed when its transaction ends (SlotLease.Lost), so the destination never sees one connection too many for long.
                slot.Lost = true;
                _log.LogWarning("shaping: lost slot {Index} of {Site}: {Error}", slot.Index, slot.Site,
                    e is RequestFailedException r ? $"{r.Status} {r.ErrorCode}" : e.Message);
            }
        }
    }

    /// <summary>Stops renewing and lets every held slot go.</summary>
    public async ValueTask DisposeAsync()
    {
        await _renewal.DisposeAsync();
        foreach (var slot in _held.Values) await ReleaseAsync(slot);
    }
}

/// <summary>One leased connection slot; disposing it lets the slot go (once).</summary>
public sealed class SlotLease : IAsyncDisposable
{
    private readonly ConnectionSlots? _owner;
    private readonly Action? _released;
    private int _disposed;

    internal SlotLease(ConnectionSlots? owner, string site, int index, BlobLeaseClient? lease, Action? released)
    {
        _owner = owner;
        Site = site;
        Index = index;
        Lease = lease!;
        _released = released;
    }

    /// <summary>A slot that is not counted anywhere (shaping switched off).</summary>
    public static SlotLease Unlimited(string site) => new(null, site, 0, null, null);

    /// <summary>The site's key.</summary>
    public string Site { get; }

    /// <summary>The slot's number, from 0.</summary>
    public int Index { get; }

    internal BlobLeaseClient Lease { get; }

    /// <summary>Being let go: no more renewals.</summary>
    internal volatile bool Releasing;

    /// <summary>The lease could not be renewed: close the connection as soon as it is idle.</summary>
    public bool Lost { get; internal set; }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1 || _owner is null) return;
        await _owner.ReleaseAsync(this);
        _released?.Invoke();
    }
}

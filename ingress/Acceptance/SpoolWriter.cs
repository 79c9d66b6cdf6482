using Microsoft.IO;
using Mta.Mail.Spool;

namespace Mta.Ingress.Acceptance;

/// <summary>
/// Where a message goes while DATA or BDAT arrives: kept in memory up to <see cref="BlockSize"/>, then
/// streamed to storage block by block (staged, uncommitted), so a session holds at most about one block
/// whatever the message size, and a slow store slows the client down (the session waits for each block
/// before it reads on) instead of filling memory. Nothing is visible in the spool before <see cref="CommitAsync"/>.
/// </summary>
public sealed class SpoolWriter(MessageSpool spool, string name) : Stream
{
    /// <summary>Octets kept in memory before they go to storage as a block.</summary>
    public const int BlockSize = 1024 * 1024;

    /// <summary>How much of a message's start is kept for the content checks: the header and the body checks' share.</summary>
    public const int HeadSize = IngressOptions.HeadSize;

    // Pooled: a fresh MemoryStream per message grew by doubling into the large-object heap from 85 KB on, and
    // the background collections it caused were about 5 % of the ingress's CPU with 100 KB mail. Free pooled
    // bytes are capped, so a burst of large messages does not stay resident.
    private static readonly RecyclableMemoryStreamManager Buffers = new(new RecyclableMemoryStreamManager.Options
    {
        BlockSize = 128 * 1024,
        LargeBufferMultiple = BlockSize,
        MaximumBufferSize = 2 * BlockSize,
        MaximumSmallPoolFreeBytes = 64L * 1024 * 1024,
        MaximumLargePoolFreeBytes = 64L * 1024 * 1024,
    });

    private readonly RecyclableMemoryStream _pending = Buffers.GetStream();
    private int _staged;
    private byte[]? _head;

    /// <summary>The message's first octets (up to <see cref="HeadSize"/>), kept when the first block went to storage.</summary>
    public ReadOnlySpan<byte> Head => HeadMemory.Span;

    /// <summary><see cref="Head"/>, for code that awaits while it reads.</summary>
    public ReadOnlyMemory<byte> HeadMemory => _head ?? _pending.GetBuffer().AsMemory(0, (int)Math.Min(_pending.Length, HeadSize));

    /// <summary>Octets written so far.</summary>
    public long Written { get; private set; }

    /// <summary>True once part of the message has gone to storage (or all of it, committed).</summary>
    public bool Stored => _staged > 0 || _committed;

    private bool _committed;

    /// <summary>
    /// Reads the message back from <paramref name="offset"/> on (for the milters): from memory while it is all there,
    /// else from the spool, committing it first (once: <see cref="CommitAsync"/> does nothing after).
    /// </summary>
    public async Task<Stream> OpenReadAsync(long offset, CancellationToken ct)
    {
        if (!Stored && Failure is null)
            return new MemoryStream(_pending.GetBuffer(), (int)Math.Min(offset, _pending.Length), (int)Math.Max(0, _pending.Length - offset), writable: false);
        await CommitAsync(ct);
        return await spool.OpenReadAsync(Name, offset, null, ct);
    }

    /// <summary>A new writer under the same name, for a message rewritten before any of it was stored.</summary>
    public SpoolWriter Successor() => !Stored ? new SpoolWriter(spool, Name) : throw new InvalidOperationException("the message is already in storage");

    /// <summary>Deletes the message from the spool if it was committed (a refused or rewritten message read back from there).</summary>
    public async Task DeleteStoredAsync(CancellationToken ct)
    {
        if (_committed) await spool.DeleteAsync(Name, ct);
    }

    /// <summary>The header block's size and fields as written so far; nothing past <see cref="HeadSize"/> is looked at.</summary>
    public HeaderMeter Header { get; } = new(HeadSize);

    /// <summary>The blob name, which is also the queue id.</summary>
    public string Name { get; } = name;

    /// <summary>Why storage failed mid-message, if it did; the rest of the message is then read and dropped.</summary>
    public string? Failure { get; private set; }

    /// <summary>True when enough is waiting to make a block.</summary>
    public bool BlockReady => _pending.Length >= BlockSize && Failure is null;

    /// <summary>Sends the waiting octets to storage as whole blocks.</summary>
    public async Task StageAsync(CancellationToken ct)
    {
        if (Failure is not null) return;
        try
        {
            var buffer = _pending.GetBuffer();
            var length = (int)_pending.Length;
            if (_staged == 0 && length >= BlockSize) _head = buffer.AsSpan(0, HeadSize).ToArray();
            var offset = 0;
            while (length - offset >= BlockSize)
            {
                await spool.StageBlockAsync(Name, _staged, buffer.AsMemory(offset, BlockSize), ct);
                _staged++;
                offset += BlockSize;
            }
            var rest = buffer.AsSpan(offset, length - offset).ToArray();
            _pending.SetLength(0);
            _pending.Write(rest);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Failure = e.Message;
            _pending.SetLength(0);
        }
    }

    /// <summary>The whole message when it never left memory and is at most <paramref name="limit"/> octets; else null.</summary>
    public byte[]? Small(int limit) => _staged == 0 && Failure is null && _pending.Length <= limit ? _pending.ToArray() : null;

    /// <summary>Makes the message durable: one upload when it never left memory, else the last block and the commit.</summary>
    public async Task CommitAsync(CancellationToken ct)
    {
        if (_committed) return;
        if (Failure is not null) throw new IOException("spool write failed mid-message: " + Failure);
        if (_staged == 0 && _pending.Length <= BlockSize)
        {
            _pending.Position = 0;
            await spool.WriteAsync(Name, _pending, ct);
            _committed = true;
            return;
        }
        await StageAsync(ct); // whole blocks first, so every block but the last is BlockSize
        if (Failure is not null) throw new IOException("spool write failed: " + Failure);
        if (_pending.Length > 0)
        {
            await spool.StageBlockAsync(Name, _staged, _pending.GetBuffer().AsMemory(0, (int)_pending.Length), ct);
            _staged++;
        }
        await spool.CommitBlocksAsync(Name, _staged, ct);
        _committed = true;
    }

    /// <inheritdoc/>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (!Header.Complete) Header.Observe(buffer);
        Written += buffer.Length;
        if (Failure is null) _pending.Write(buffer);
    }

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <inheritdoc/>
    public override bool CanRead => false;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc/>
    public override void Flush() { }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _pending.Dispose();
        base.Dispose(disposing);
    }
}

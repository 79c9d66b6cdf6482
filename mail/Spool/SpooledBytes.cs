using System.Buffers;

namespace Mta.Mail.Spool;

/// <summary>
/// A message read from the spool into a buffer rented from the shared array pool; <see cref="Dispose"/> gives it back,
/// after which <see cref="Memory"/> must not be used.
/// </summary>
public sealed class SpooledBytes : IDisposable
{
    private byte[]? _buffer;

    internal SpooledBytes(int length)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(length);
        Length = length;
    }

    /// <summary>The message's length in octets.</summary>
    public int Length { get; }

    /// <summary>The message.</summary>
    public ReadOnlyMemory<byte> Memory => Buffer.AsMemory(0, Length);

    internal byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(SpooledBytes));

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
            ArrayPool<byte>.Shared.Return(buffer);
    }
}

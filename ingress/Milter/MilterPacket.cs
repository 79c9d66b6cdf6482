using System.Buffers;
using System.Buffers.Binary;

namespace Mta.Ingress.Milter;

/// <summary>A milter that breaks the protocol: the session then applies the milter's default action.</summary>
public sealed class MilterProtocolException(string message) : Exception(message);

/// <summary>
/// The framing of every milter packet: a 4-octet big-endian length that counts the code and the data, the code, the
/// data. Reading is bounded: a length over the negotiated size is a protocol error, never an allocation.
/// </summary>
public static class MilterPacket
{
    /// <summary>Octets of the length prefix.</summary>
    public const int LengthSize = 4;

    /// <summary>One packet: length, code, data.</summary>
    public static byte[] Encode(byte code, ReadOnlySpan<byte> data)
    {
        var packet = new byte[LengthSize + 1 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)(data.Length + 1));
        packet[LengthSize] = code;
        data.CopyTo(packet.AsSpan(LengthSize + 1));
        return packet;
    }

    /// <summary>
    /// Takes one whole packet off <paramref name="buffer"/>: false when more input is needed. A length of 0 (no code) or
    /// one over <paramref name="maxData"/> data octets is a <see cref="MilterProtocolException"/>.
    /// </summary>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, int maxData, out byte code, out byte[] data)
    {
        (code, data) = (0, []);
        if (buffer.Length < LengthSize) return false;
        Span<byte> prefix = stackalloc byte[LengthSize];
        buffer.Slice(0, LengthSize).CopyTo(prefix);
        var length = BinaryPrimitives.ReadUInt32BigEndian(prefix);
        if (length == 0) throw new MilterProtocolException("packet without a code (length 0)");
        if (length - 1 > (uint)maxData) throw new MilterProtocolException($"packet of {length} octets, over the {maxData + 1} allowed");
        if (buffer.Length < LengthSize + length) return false;
        var packet = buffer.Slice(LengthSize, length);
        code = packet.FirstSpan[0];
        data = packet.Slice(1).ToArray();
        buffer = buffer.Slice(LengthSize + length);
        return true;
    }
}

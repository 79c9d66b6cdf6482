using System.Buffers;

namespace Mta.Ingress.Smtp;

/// <summary>
/// Reads the octets of BDAT chunks (RFC 3030) into the message: taken as they are (no dot-stuffing, no end marker),
/// but under the same line policy as DATA (<see cref="DataReader"/>), so that CHUNKING is no way around it: a CR or LF
/// that is not part of a CRLF is noted, and turned into CRLF when <paramref name="normalize"/> is set; a line longer
/// than <paramref name="lineLimit"/> octets (CRLF included; 0: no limit) is noted. A CRLF may be split across chunks.
/// Octets past the size limit are counted and dropped, never buffered.
/// </summary>
public sealed class ChunkReader(Stream sink, long sizeLimit, bool normalize = false, int lineLimit = 0)
{
    private static readonly byte[] Crlf = "\r\n"u8.ToArray();

    // A CR was the last octet seen; whether it is bare depends on the next one, maybe in the next chunk.
    private bool _pendingCr;
    private long _lineLength;

    /// <summary>Octets of message content so far (after normalizing), including any over the limit.</summary>
    public long Size { get; private set; }

    /// <summary>True once the content went over the size limit.</summary>
    public bool TooBig => Size > sizeLimit;

    /// <summary>True when a CR or LF came alone (RFC 5321 §2.3.8 allows neither in mail data).</summary>
    public bool BareLineEnding { get; private set; }

    /// <summary>True when a line was longer than the line limit.</summary>
    public bool LineTooLong { get; private set; }

    /// <summary>Takes a piece of a chunk.</summary>
    public void Write(ReadOnlySequence<byte> piece)
    {
        foreach (var segment in piece) Write(segment.Span);
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0)
        {
            if (_pendingCr)
            {
                _pendingCr = false;
                if (bytes[0] == (byte)'\n')
                {
                    EndLine(Crlf);
                    bytes = bytes[1..];
                    continue;
                }
                Bare((byte)'\r');
            }
            var stop = bytes.IndexOfAny((byte)'\r', (byte)'\n');
            var text = stop < 0 ? bytes : bytes[..stop];
            _lineLength += text.Length;
            if (lineLimit > 0 && _lineLength > lineLimit) LineTooLong = true;
            Append(text);
            if (stop < 0) return;
            if (bytes[stop] == (byte)'\r') _pendingCr = true;
            else Bare((byte)'\n');
            bytes = bytes[(stop + 1)..];
        }
    }

    /// <summary>The message is complete (the LAST chunk was read): a CR at its very end was bare.</summary>
    public void Complete()
    {
        if (!_pendingCr) return;
        _pendingCr = false;
        Bare((byte)'\r');
    }

    private void Bare(byte octet)
    {
        BareLineEnding = true;
        if (normalize) EndLine(Crlf);
        else EndLine([octet]);
    }

    private void EndLine(ReadOnlySpan<byte> ending)
    {
        if (lineLimit > 0 && _lineLength + ending.Length > lineLimit) LineTooLong = true;
        _lineLength = 0;
        Append(ending);
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        Size += bytes.Length;
        if (Size > sizeLimit) return; // the message will be refused: nothing more is stored
        sink.Write(bytes);
    }
}

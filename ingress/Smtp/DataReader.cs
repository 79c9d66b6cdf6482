using System.Buffers;

namespace Mta.Ingress.Smtp;

/// <summary>
/// Reads the DATA phase (RFC 5321 §4.1.1.4, §4.5.2): removes dot-stuffing and stops at
/// <c>CRLF.CRLF</c> and nothing else, so bare-LF tricks cannot end a message early (SMTP smuggling).
/// Bytes past the size limit are counted and dropped, never buffered.
/// </summary>
public sealed class DataReader(Stream sink, long sizeLimit)
{
    /// <summary>Longest stretch kept waiting for its line end; longer lines are passed on in pieces.</summary>
    private const int MaxPending = 8192;

    // The DATA command line itself ended with CRLF, so the first line starts "after CRLF".
    private bool _afterCrlf = true;

    /// <summary>Octets of message content seen (after unstuffing), including any over the limit.</summary>
    public long Size { get; private set; }

    /// <summary>True once the content went over the size limit.</summary>
    public bool TooBig => Size > sizeLimit;

    /// <summary>
    /// Consumes what it can of <paramref name="buffer"/>. Returns true when the end-of-data line was
    /// read; <paramref name="buffer"/> is left at the first unconsumed byte either way.
    /// </summary>
    public bool Process(ref ReadOnlySequence<byte> buffer)
    {
        while (true)
        {
            var lf = buffer.PositionOf((byte)'\n');
            if (lf is null)
            {
                if (buffer.Length > MaxPending)
                {
                    // A very long line: pass it on now but keep the last byte, which may be the CR of a CRLF.
                    var chunk = buffer.Slice(0, buffer.Length - 1);
                    Write(chunk, _afterCrlf);
                    _afterCrlf = false;
                    buffer = buffer.Slice(chunk.End);
                }
                return false;
            }

            var line = buffer.Slice(0, lf.Value);              // without the LF
            var next = buffer.GetPosition(1, lf.Value);
            var endsWithCr = line.Length > 0 && line.Slice(line.Length - 1).FirstSpan[0] == (byte)'\r';
            if (_afterCrlf && line.Length == 2 && IsDotCr(line))
            {
                buffer = buffer.Slice(next);
                return true;
            }
            Write(buffer.Slice(0, next), _afterCrlf);
            _afterCrlf = endsWithCr;
            buffer = buffer.Slice(next);
        }
    }

    private static bool IsDotCr(ReadOnlySequence<byte> line)
    {
        Span<byte> two = stackalloc byte[2];
        line.CopyTo(two);
        return two[0] == (byte)'.' && two[1] == (byte)'\r';
    }

    private void Write(ReadOnlySequence<byte> bytes, bool atLineStart)
    {
        if (atLineStart && bytes.Length > 0 && bytes.FirstSpan[0] == (byte)'.')
            bytes = bytes.Slice(1); // dot-unstuffing
        Size += bytes.Length;
        if (Size > sizeLimit)
            return; // the message will be refused: nothing more is stored
        foreach (var segment in bytes)
            sink.Write(segment.Span);
    }
}

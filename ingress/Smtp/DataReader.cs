using System.Buffers;

namespace Mta.Ingress.Smtp;

/// <summary>
/// Reads the DATA phase (RFC 5321 §4.1.1.4, §4.5.2): removes dot-stuffing and stops at
/// <c>CRLF.CRLF</c> and nothing else, so bare-LF tricks cannot end a message early (SMTP smuggling).
/// Bytes past the size limit are counted and dropped, never buffered. A bare CR or LF (one not part of a
/// CRLF) is noted, and turned into CRLF when <paramref name="normalize"/> is set; lines longer than
/// <paramref name="lineLimit"/> octets (CRLF included; 0: no limit) are noted too.
/// </summary>
public sealed class DataReader(Stream sink, long sizeLimit, bool normalize = false, int lineLimit = 0)
{
    /// <summary>Longest stretch kept waiting for its line end; longer lines are passed on in pieces.</summary>
    private const int MaxPending = 8192;

    // The DATA command line itself ended with CRLF, so the first line starts "after CRLF".
    private bool _afterCrlf = true;

    /// <summary>Octets of message content seen (after unstuffing), including any over the limit.</summary>
    public long Size { get; private set; }

    /// <summary>True once the content went over the size limit.</summary>
    public bool TooBig => Size > sizeLimit;

    /// <summary>True when a CR or LF came alone (RFC 5321 §2.3.8 allows neither in mail data).</summary>
    public bool BareLineEnding { get; private set; }

    /// <summary>True when a line was longer than the line limit.</summary>
    public bool LineTooLong { get; private set; }

    // Octets of the current line seen so far (for the line limit across pieces of a long line).
    private long _lineLength;

    private static readonly byte[] Crlf = "\r\n"u8.ToArray();

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
                    CheckLine(chunk, complete: false);
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
            CheckLine(buffer.Slice(0, next), complete: true);
            if (!endsWithCr) BareLineEnding = true; // a bare LF
            if (!endsWithCr && normalize)
            {
                Write(line, _afterCrlf);
                Append(Crlf);
            }
            else
            {
                Write(buffer.Slice(0, next), _afterCrlf);
            }
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

    /// <summary>Notes bare CRs (a CR not right before the line's LF) and the line's length.</summary>
    private void CheckLine(ReadOnlySequence<byte> piece, bool complete)
    {
        _lineLength += piece.Length;
        if (lineLimit > 0 && _lineLength > lineLimit) LineTooLong = true;
        var crs = piece;
        if (complete && piece.Length >= 2) crs = piece.Slice(0, piece.Length - 2); // the CR of the CRLF is fine
        else if (complete) crs = piece.Slice(0, 0);
        if (crs.PositionOf((byte)'\r') is not null) BareLineEnding = true;
        if (complete) _lineLength = 0;
    }

    private void Write(ReadOnlySequence<byte> bytes, bool atLineStart)
    {
        if (atLineStart && bytes.Length > 0 && bytes.FirstSpan[0] == (byte)'.')
            bytes = bytes.Slice(1); // dot-unstuffing
        if (normalize && bytes.PositionOf((byte)'\r') is not null)
        {
            // Normalizing: a bare CR becomes CRLF too. A CR that ends a long line's piece is bare: the piece
            // holds back the buffer's last byte, and no LF was in the buffer.
            var copy = bytes.ToArray();
            for (var i = 0; i < copy.Length; i++)
            {
                if (copy[i] == (byte)'\r' && !(i + 1 < copy.Length && copy[i + 1] == (byte)'\n'))
                {
                    Append(copy.AsSpan(0, i));
                    Append(Crlf);
                    copy = copy[(i + 1)..];
                    i = -1;
                }
            }
            Append(copy);
            return;
        }
        foreach (var segment in bytes)
            Append(segment.Span);
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        Size += bytes.Length;
        if (Size > sizeLimit)
            return; // the message will be refused: nothing more is stored
        sink.Write(bytes);
    }
}

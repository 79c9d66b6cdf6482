using System.Globalization;
using System.Text;

namespace Mta.Tests.Peers;

/// <summary>
/// The client side of an HTTP/1.1 connection, read request by request: a head up to its blank line, then the body
/// its Content-Length or chunked encoding announces. Returns the bytes as they came, to be passed on unchanged.
/// </summary>
public sealed class HttpInput(Stream stream)
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    /// <summary>The next request's head (request line and headers, blank line included); null when the client is done.</summary>
    public async Task<byte[]?> ReadHeadAsync(CancellationToken ct)
    {
        var head = new MemoryStream();
        while (true)
        {
            if (_start == _end && !await FillAsync(ct)) return head.Length == 0 ? null : throw new EndOfStreamException("head cut off");
            var b = _buffer[_start++];
            head.WriteByte(b);
            if (b == '\n' && head.Length >= 4 && EndsWithBlankLine(head)) return head.ToArray();
        }
    }

    private static bool EndsWithBlankLine(MemoryStream head)
    {
        var bytes = head.GetBuffer().AsSpan(0, (int)head.Length);
        return bytes.EndsWith("\r\n\r\n"u8);
    }

    /// <summary>The body after a head: the raw bytes to pass on and the body itself (the same unless chunked).</summary>
    public async Task<(byte[] Raw, byte[] Body)> ReadBodyAsync(string? contentLength, bool chunked, CancellationToken ct)
    {
        if (chunked) return await ReadChunkedAsync(ct);
        var length = contentLength is null ? 0 : long.Parse(contentLength, CultureInfo.InvariantCulture);
        var body = await ReadExactlyAsync((int)length, ct);
        return (body, body);
    }

    private async Task<(byte[] Raw, byte[] Body)> ReadChunkedAsync(CancellationToken ct)
    {
        var raw = new MemoryStream();
        var body = new MemoryStream();
        while (true)
        {
            var sizeLine = await ReadLineAsync(ct);
            raw.Write(Encoding.Latin1.GetBytes(sizeLine));
            var size = int.Parse(sizeLine.Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var chunk = await ReadExactlyAsync(size, ct);
            raw.Write(chunk);
            body.Write(chunk);
            var end = await ReadLineAsync(ct); // CRLF after the chunk; after the last one, trailers end with a blank line
            raw.Write(Encoding.Latin1.GetBytes(end));
            if (size == 0)
            {
                while (end != "\r\n") raw.Write(Encoding.Latin1.GetBytes(end = await ReadLineAsync(ct)));
                return (raw.ToArray(), body.ToArray());
            }
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken ct)
    {
        var line = new StringBuilder();
        while (true)
        {
            if (_start == _end && !await FillAsync(ct)) throw new EndOfStreamException("line cut off");
            var c = (char)_buffer[_start++];
            line.Append(c);
            if (c == '\n') return line.ToString();
        }
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken ct)
    {
        var result = new byte[count];
        var done = 0;
        while (done < count)
        {
            if (_start == _end && !await FillAsync(ct)) throw new EndOfStreamException("body cut off");
            var n = Math.Min(count - done, _end - _start);
            Buffer.BlockCopy(_buffer, _start, result, done, n);
            (_start, done) = (_start + n, done + n);
        }
        return result;
    }

    private async Task<bool> FillAsync(CancellationToken ct)
    {
        _start = 0;
        _end = await stream.ReadAsync(_buffer, ct);
        return _end > 0;
    }
}

using System.Buffers;

namespace Mta.Ingress.Smtp;

// BDAT (CHUNKING, RFC 3030): chunks taken as counted octets, answered one by one.
public sealed partial class SmtpSession
{
    // CHUNKING (RFC 3030): the message assembled from BDAT chunks, and the chunk being read.
    private bool _inChunk;

    private long _chunkRemaining;

    private bool _chunkLast;

    private string? _chunkError;

    /// <summary>The chunk just announced starts the message: the milters get the DATA event first.</summary>
    private bool _chunkFirst;

    /// <summary>
    /// <c>BDAT size [LAST]</c>. The chunk's octets follow whatever the reply, so a refused chunk is
    /// still read (and dropped); a size that cannot be parsed leaves no way to find the next command,
    /// so the session ends.
    /// </summary>
    private Next Bdat(string arg)
    {
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is < 1 or > 2 || !long.TryParse(parts[0], System.Globalization.NumberStyles.None, null, out var size)
            || parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase))
        {
            Reply("501 5.5.4 Syntax: BDAT count [LAST]", "421 4.7.0 " + hostname + " Error: cannot find the end of the chunk, closing");
            _quit = true;
            return Next.Command;
        }
        _chunkLast = parts.Length == 2;
        _chunkRemaining = size;
        _chunkError = _mail is null ? "503 5.5.1 Error: need MAIL command"
            : _mail.Recipients.Count == 0 ? "554 5.5.1 Error: no valid recipients"
            : null;
        if (_chunkError is null && _mail!.Chunks is null)
        {
            _chunkFirst = _milters is not null;
            var writer = acceptor.NewMessage(clock.GetUtcNow());
            _mail.StartChunks(writer, new ChunkReader(writer, options.MessageSizeLimit, options.BareLineEndings == "normalize", options.TextLineLimit));
        }
        return Next.Chunk;
    }

    /// <summary>BDAT octets are taken as they are: no dot-stuffing, no line structure. Returns the input after them.</summary>
    private ReadOnlySequence<byte> TakeChunk(ReadOnlySequence<byte> buffer)
    {
        var take = Math.Min(buffer.Length, _chunkRemaining);
        _chunkRemaining -= take;
        if (_chunkError is null)
        {
            _mail!.ChunkedSize += take;
            _mail.Chunks!.Value.Reader.Write(buffer.Slice(0, take));
        }
        return buffer.Slice(take);
    }

    /// <summary>Answers a whole chunk: 250 for a middle one, the queue id (or a refusal) for the last.</summary>
    private async Task EndChunkAsync(CancellationToken ct)
    {
        _inChunk = false;
        if (_chunkError is not null)
        {
            Error(_chunkError);
            return;
        }
        var tooBig = _mail!.ChunkedSize > options.MessageSizeLimit;
        if (!_chunkLast)
        {
            if (tooBig) { Error("552 5.3.4 Error: message file too big"); ResetTransaction(); return; }
            Reply($"250 2.0.0 Ok: {_mail.ChunkedSize} octets");
            return;
        }
        var (content, reader) = _mail.TakeChunks();
        reader.Complete();
        await FinishDataAsync(content, reader.Size, tooBig, ct, Refusal(reader.BareLineEnding, reader.LineTooLong, content.Header));
        content.Dispose();
    }
}

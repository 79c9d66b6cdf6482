using MimeKit;

namespace Mta.Mail.Cleanup;

/// <summary>
/// How every stage parses MIME that came from a client: with bounds, so no message can make a parse take memory in
/// proportion to its size. The ingress refuses a header block over its budget before the <c>250</c>; these bounds hold
/// for whatever a queue or the spool holds all the same.
/// </summary>
public static class UntrustedMime
{
    /// <summary>The largest header block any stage parses: the part of a message's start the ingress keeps (256 KiB).</summary>
    public const int HeaderBlockLimit = 256 * 1024;

    /// <summary>Deepest MIME nesting parsed (Postfix <c>mime_nesting_limit</c>).</summary>
    public const int NestingLimit = 100;

    /// <summary>MimeKit's parser options with the nesting bound.</summary>
    public static ParserOptions Options { get; } = Bounded();

    private static ParserOptions Bounded()
    {
        var options = ParserOptions.Default.Clone();
        options.MaxMimeDepth = NestingLimit;
        return options;
    }

    /// <summary>
    /// The header block of a message, from its <paramref name="start"/> (<paramref name="more"/>: the message goes on past it), parsed from at most <see cref="HeaderBlockLimit"/>
    /// octets; the offset where the body starts. A header that does not end within them is refused.
    /// </summary>
    public static (HeaderList Headers, long BodyOffset) ParseHeader(ArraySegment<byte> start, bool more)
    {
        var window = Math.Min(start.Count, HeaderBlockLimit);
        using var stream = new MemoryStream(start.Array!, start.Offset, window, writable: false);
        var parser = new MimeParser(Options, stream, MimeFormat.Entity);
        var headers = parser.ParseHeaders();
        if (window == HeaderBlockLimit && parser.Position >= window && (more || start.Count > window))
            throw new HeaderTooLargeException($"header block over {HeaderBlockLimit} octets");
        return (headers, parser.Position);
    }
}

/// <summary>A message's header block is over <see cref="UntrustedMime.HeaderBlockLimit"/>: it is not parsed.</summary>
public sealed class HeaderTooLargeException(string message) : Exception(message);

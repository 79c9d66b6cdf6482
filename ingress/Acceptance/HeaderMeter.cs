namespace Mta.Ingress.Acceptance;

/// <summary>
/// Measures a message's header block as its octets arrive — octets up to and including the empty line that ends it,
/// and its fields (lines that do not start with white space) — without keeping any of it, and stops looking once the
/// header is over <see cref="Cap"/> octets. The session refuses a message whose header is over its budget before
/// anything parses it (Postfix's cleanup discards the excess of one field over <c>header_size_limit</c>; this bounds
/// the whole block, which cleanup and bounces parse).
/// </summary>
public sealed class HeaderMeter(long cap)
{
    private bool _atLineStart = true;
    private bool _emptyLineCr; // the line so far is a lone CR: CRLF next ends the header

    /// <summary>Octets of the header block so far (at most a little over <see cref="Cap"/>).</summary>
    public long Octets { get; private set; }

    /// <summary>Header fields so far.</summary>
    public int Fields { get; private set; }

    /// <summary>True once the empty line ending the header block was seen.</summary>
    public bool Complete { get; private set; }

    /// <summary>Octets after which the meter stops looking: the header is too large whatever the limits.</summary>
    public long Cap => cap;

    /// <summary>Looks at the next octets of the message.</summary>
    public void Observe(ReadOnlySpan<byte> bytes)
    {
        for (var i = 0; i < bytes.Length && !Complete && Octets <= cap; i++)
        {
            var b = bytes[i];
            Octets++;
            if (_atLineStart)
            {
                _atLineStart = false;
                if (b == (byte)'\n') { Complete = true; break; }
                if (b == (byte)'\r') { _emptyLineCr = true; continue; }
                if (b is not ((byte)' ' or (byte)'\t')) Fields++;
            }
            else if (_emptyLineCr)
            {
                _emptyLineCr = false;
                if (b == (byte)'\n') { Complete = true; break; }
            }
            if (b == (byte)'\n') _atLineStart = true;
        }
    }

    /// <summary>Whether the header is within <paramref name="octets"/> and <paramref name="fields"/>.</summary>
    public bool Within(long octets, int fields) => Octets <= octets && Fields <= fields;
}

using Mta.Ingress.Acceptance;
using Mta.Mail.Contracts;

namespace Mta.Ingress.Smtp;

/// <summary>
/// One mail transaction (RFC 5321 §3.3), from an accepted MAIL to the end of its message or RSET: the sender and its
/// parameters, the recipients with their DSN parameters, and the BDAT chunks gathered so far. A session holds none
/// between transactions, so "is there a transaction" is one null check rather than a reading of several fields.
/// </summary>
public sealed class MailTransaction(string sender, MailParameters parameters) : IDisposable
{
    private readonly List<string> _recipients = [];
    private readonly Dictionary<string, RecipientDsn> _recipientDsn = new(StringComparer.Ordinal);

    /// <summary>The reverse-path; empty for the null sender.</summary>
    public string Sender { get; } = sender;

    /// <summary>MAIL's parameters (RET, ENVID, SMTPUTF8).</summary>
    public MailParameters Parameters { get; } = parameters;

    /// <summary>The accepted recipients, in order.</summary>
    public IReadOnlyList<string> Recipients => _recipients;

    /// <summary>The message being assembled from BDAT chunks, and its reader; null before the first chunk.</summary>
    public (SpoolWriter Writer, ChunkReader Reader)? Chunks { get; private set; }

    /// <summary>Octets received in BDAT chunks so far.</summary>
    public long ChunkedSize { get; set; }

    /// <summary>Adds an accepted recipient with its RCPT parameters.</summary>
    public void Add(string recipient, RcptParameters dsn)
    {
        _recipients.Add(recipient);
        if (dsn.Notify is not null || dsn.OriginalRecipient is not null) _recipientDsn[recipient] = new RecipientDsn(dsn.Notify, dsn.OriginalRecipient);
    }

    /// <summary>Starts assembling the message from chunks.</summary>
    public void StartChunks(SpoolWriter writer, ChunkReader reader) => Chunks = (writer, reader);

    /// <summary>Hands the chunked message over (its writer is then the caller's to dispose).</summary>
    public (SpoolWriter Writer, ChunkReader Reader) TakeChunks()
    {
        var chunks = Chunks!.Value;
        Chunks = null;
        return chunks;
    }

    /// <summary>The DSN request the envelope carries (RFC 3461), or null when the client made none.</summary>
    public DsnRequest? Dsn => Parameters.Ret is null && Parameters.EnvelopeId is null && _recipientDsn.Count == 0 ? null
        : new DsnRequest { Ret = Parameters.Ret, EnvelopeId = Parameters.EnvelopeId, Recipients = new Dictionary<string, RecipientDsn>(_recipientDsn) };

    /// <inheritdoc />
    public void Dispose() => Chunks?.Writer.Dispose();
}

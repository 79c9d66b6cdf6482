namespace Mta.Ingress.Milter;

/// <summary>
/// What one milter asked for at the end of a message: header changes in order, a new body (written to a temporary
/// file as its parts arrive, so a large one is never held in memory), envelope changes, and a quarantine reason.
/// </summary>
/// <param name="maxBody">The most octets a replacement body may have (the message size limit).</param>
public sealed class MilterEdits(long maxBody) : IDisposable
{
    /// <summary>The most header changes, and octets in them, one milter may ask for per message (a bound on memory).</summary>
    public const int MaxHeaderChanges = 1000, MaxHeaderOctets = IngressOptions.HeadSize;

    /// <summary>The most recipients one milter may add per message.</summary>
    public const int MaxAddedRecipients = 1000;

    private long _headerOctets;

    /// <summary>Header additions, insertions, changes and deletions, in the order asked.</summary>
    public List<MilterReply.HeaderChange> Headers { get; } = [];

    /// <summary>The replacement body, rewound when the message is over; null when the body stays.</summary>
    public FileStream? Body { get; private set; }

    /// <summary>A new envelope sender (SMFIR_CHGFROM) and its ESMTP parameters.</summary>
    public MilterReply.EnvelopeChange? Sender { get; set; }

    /// <summary>Recipients to add (SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR).</summary>
    public List<MilterReply.EnvelopeChange> AddedRecipients { get; } = [];

    /// <summary>Recipients to remove (SMFIR_DELRCPT).</summary>
    public List<string> DeletedRecipients { get; } = [];

    /// <summary>SMFIR_QUARANTINE's reason: the message goes to the hold queue.</summary>
    public string? Quarantine { get; set; }

    /// <summary>True when anything in the message's octets changes.</summary>
    public bool ChangesContent => Headers.Count > 0 || Body is not null;

    /// <summary>A short account for the transaction's log line (e.g. <c>+2 headers, body, rcpt +1 -1</c>).</summary>
    public string Summary()
    {
        var parts = new List<string>();
        if (Headers.Count > 0) parts.Add($"{Headers.Count} header change{(Headers.Count == 1 ? "" : "s")}");
        if (Body is not null) parts.Add("body replaced");
        if (Sender is not null) parts.Add("sender changed");
        if (AddedRecipients.Count + DeletedRecipients.Count > 0) parts.Add($"rcpt +{AddedRecipients.Count} -{DeletedRecipients.Count}");
        if (Quarantine is not null) parts.Add("quarantine");
        return string.Join(", ", parts);
    }

    /// <summary>Takes a header change, within <see cref="MaxHeaderChanges"/> and <see cref="MaxHeaderOctets"/>.</summary>
    public void AddHeader(MilterReply.HeaderChange change)
    {
        _headerOctets += change.Name.Length + change.Value.Length;
        if (Headers.Count >= MaxHeaderChanges || _headerOctets > MaxHeaderOctets)
            throw new MilterProtocolException($"more than {MaxHeaderChanges} header changes or {MaxHeaderOctets} octets of them");
        Headers.Add(change);
    }

    /// <summary>Takes a recipient to add, within <see cref="MaxAddedRecipients"/>.</summary>
    public void AddRecipient(MilterReply.EnvelopeChange recipient)
    {
        if (AddedRecipients.Count >= MaxAddedRecipients) throw new MilterProtocolException($"more than {MaxAddedRecipients} recipients added");
        AddedRecipients.Add(recipient);
    }

    /// <summary>Appends a part of the new body, which may not grow past the message size limit.</summary>
    public async Task AppendBodyAsync(byte[] part, CancellationToken ct)
    {
        if ((Body?.Length ?? 0) + part.Length > maxBody) throw new MilterProtocolException($"a replacement body over {maxBody} octets");
        Body ??= new FileStream(Path.Combine(Path.GetTempPath(), "milter-body-" + Guid.NewGuid().ToString("N")), FileMode.CreateNew,
            FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        await Body.WriteAsync(part, ct);
    }

    /// <summary>Gives the replacement body to the caller, who disposes it (and with it the file).</summary>
    public void Detach() => Body = null;

    /// <inheritdoc />
    public void Dispose() => Body?.Dispose();
}

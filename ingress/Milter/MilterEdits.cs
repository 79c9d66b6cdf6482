namespace Mta.Ingress.Milter;

/// <summary>
/// What one milter asked for at the end of a message: header changes in order, a new body (written to a temporary
/// file as its parts arrive, so a large one is never held in memory), envelope changes, and a quarantine reason.
/// </summary>
public sealed class MilterEdits : IDisposable
{
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

    /// <summary>Appends a part of the new body.</summary>
    public async Task AppendBodyAsync(byte[] part, CancellationToken ct)
    {
        Body ??= new FileStream(Path.Combine(Path.GetTempPath(), "milter-body-" + Guid.NewGuid().ToString("N")), FileMode.CreateNew,
            FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        await Body.WriteAsync(part, ct);
    }

    /// <summary>Gives the replacement body to the caller, who disposes it (and with it the file).</summary>
    public void Detach() => Body = null;

    /// <inheritdoc />
    public void Dispose() => Body?.Dispose();
}

namespace Mta.Ingress.Milter;

/// <summary>What the milters made of a message: a verdict, or the changes to apply (each milter saw the ones before it).</summary>
public sealed class MilterMessageResult : IDisposable
{
    /// <summary>A refusal, discard or shutdown; null when the message goes on.</summary>
    public MilterVerdict? Verdict { get; set; }

    /// <summary>The header as the milters left it; null when the message's octets stay as they are.</summary>
    public MilterHeader? Header { get; set; }

    /// <summary>The replacement body's file, rewound; null when the body stays.</summary>
    public FileStream? Body { get; set; }

    /// <summary>Where the original body starts in the message.</summary>
    public long BodyOffset { get; set; }

    /// <summary>The hold queue's reason, when a milter quarantined the message.</summary>
    public string? Hold { get; set; }

    /// <summary>A new envelope sender.</summary>
    public string? Sender { get; set; }

    /// <summary>Recipients added, in order.</summary>
    public List<string> AddedRecipients { get; } = [];

    /// <summary>Recipients removed.</summary>
    public List<string> DeletedRecipients { get; } = [];

    /// <summary>What each milter did, for the transaction's log line.</summary>
    public List<string> Notes { get; } = [];

    /// <summary>True when the message's octets change.</summary>
    public bool ChangesContent => Header is not null;

    /// <inheritdoc />
    public void Dispose() => Body?.Dispose();
}

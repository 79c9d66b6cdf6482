using Mta.Ingress.Acceptance;
using Mta.Mail.Contracts;
using Mta.Mail.Spool;

namespace Mta.Tests.Protocol;

/// <summary>
/// The session's acceptor for in-memory protocol tests: keeps each envelope with the octets the session wrote
/// and answers 250. Storage is never reached for messages under a block (1 MiB).
/// </summary>
public sealed class RecordingAcceptor(MessageSpool spool) : IMessageAcceptor
{
    private readonly List<(IncomingEnvelope Envelope, byte[] Content)> _accepted = [];

    /// <summary>Every accepted message with its octets as the session stored them.</summary>
    public IReadOnlyList<(IncomingEnvelope Envelope, byte[] Content)> Messages { get { lock (_accepted) return _accepted.ToList(); } }

    /// <summary>The envelopes alone.</summary>
    public IReadOnlyList<IncomingEnvelope> Envelopes => Messages.Select(m => m.Envelope).ToList();

    /// <inheritdoc />
    public SpoolWriter NewMessage(DateTimeOffset now)
        => new(spool, QueueId.New(now));

    /// <inheritdoc />
    public SpoolWriter NewMessage(string queueId) => new(spool, queueId);

    /// <inheritdoc />
    public Task<string?> AcceptAsync(IncomingEnvelope envelope, SpoolWriter content, CancellationToken ct)
    {
        var bytes = content.Small(int.MaxValue) ?? throw new InvalidOperationException("message went to storage");
        lock (_accepted) _accepted.Add((envelope, bytes));
        return Task.FromResult<string?>(null);
    }
}

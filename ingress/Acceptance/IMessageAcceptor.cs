using Mta.Mail.Contracts;

namespace Mta.Ingress.Acceptance;

/// <summary>
/// Where a session gets a place for a message's octets and hands the finished message: <see cref="MessageAcceptor"/>
/// in the ingress (spool, cleanup, queues). The session's protocol tests give it one in memory, so most SMTP cases run
/// without storage (as Kestrel's connection tests run over in-memory pipes).
/// </summary>
public interface IMessageAcceptor
{
    /// <summary>A place for the next message's bytes, named by a new queue id.</summary>
    SpoolWriter NewMessage(DateTimeOffset now);

    /// <summary>A place for a message's bytes under a queue id chosen by the caller (an injection's, which a retry repeats).</summary>
    SpoolWriter NewMessage(string queueId);

    /// <summary>
    /// Takes responsibility for the message: null when the client may have its 250, or the refusal it gets instead.
    /// Throws <see cref="StorageUnavailableException"/> when storage could not take it.
    /// </summary>
    Task<string?> AcceptAsync(IncomingEnvelope envelope, SpoolWriter content, CancellationToken ct);
}

using Microsoft.Extensions.Logging;
using Mta.Ingress.Metrics;

namespace Mta.Ingress.Milter;

/// <summary>
/// A session's milters, called in order for each event (Postfix's milter.c): the first that refuses decides, and the
/// rest are not asked. At the end of a message each milter gets the message as the ones before it left it.
/// </summary>
public sealed class MilterChain(MilterSettings settings, MilterFacts facts, ILogger log, IngressMetrics? metrics) : IAsyncDisposable
{
    private readonly MilterClient[] _clients = [.. settings.Endpoints.Select(e => new MilterClient(e, settings.MacroNames, facts, log, metrics))];

    /// <summary>What the macros are made of; the session keeps it up to date.</summary>
    public MilterFacts Facts => facts;

    /// <summary>Connects to each milter and sends the connect event.</summary>
    public Task<MilterVerdict?> ConnectAsync(CancellationToken ct) => EachAsync(c => c.ConnectAsync(ct));

    /// <summary>HELO or EHLO.</summary>
    public Task<MilterVerdict?> HeloAsync(string name, CancellationToken ct) => EachAsync(c => c.HeloAsync(name, ct));

    /// <summary>MAIL FROM.</summary>
    public Task<MilterVerdict?> MailAsync(string sender, IReadOnlyList<string> parameters, CancellationToken ct) => EachAsync(c => c.MailAsync(sender, parameters, ct));

    /// <summary>RCPT TO.</summary>
    public Task<MilterVerdict?> RcptAsync(string recipient, IReadOnlyList<string> parameters, CancellationToken ct) => EachAsync(c => c.RcptAsync(recipient, parameters, ct));

    /// <summary>DATA (or the first BDAT).</summary>
    public Task<MilterVerdict?> DataAsync(CancellationToken ct) => EachAsync(c => c.DataAsync(ct));

    /// <summary>A command the session does not know.</summary>
    public Task<MilterVerdict?> UnknownAsync(string line, CancellationToken ct) => EachAsync(c => c.UnknownAsync(line, ct));

    /// <summary>The transaction ended without its message.</summary>
    public async Task AbortAsync(CancellationToken ct)
    {
        foreach (var client in _clients) await client.AbortAsync(ct);
    }

    private async Task<MilterVerdict?> EachAsync(Func<MilterClient, Task<MilterVerdict?>> @event)
    {
        foreach (var client in _clients)
            if (await @event(client) is { } verdict) return verdict;
        return null;
    }

    /// <summary>
    /// The message phase: each milter in turn gets the header and the body (read through <paramref name="openFrom"/>
    /// from where the message lies, from an offset), and its changes are applied before the next one reads it.
    /// </summary>
    /// <param name="head">The message's first octets, holding its whole header block.</param>
    /// <param name="size">The message's size.</param>
    /// <param name="openFrom">Opens the original message from an offset.</param>
    /// <param name="maxBody">The most octets a milter's replacement body may have.</param>
    /// <param name="ct">Cancellation.</param>
    public async Task<MilterMessageResult> MessageAsync(ReadOnlyMemory<byte> head, long size, Func<long, CancellationToken, Task<Stream>> openFrom,
        long maxBody, CancellationToken ct)
    {
        var (headerLength, bodyOffset) = MilterHeader.Split(head.Span, size);
        var header = MilterHeader.Parse(head.Span[..headerLength]);
        if (header is null) (header, bodyOffset) = (MilterHeader.Empty(), 0);
        var result = new MilterMessageResult { BodyOffset = bodyOffset };
        var changed = false;
        foreach (var client in _clients)
        {
            var body = result.Body is { } file ? (Func<CancellationToken, Task<Stream>>)(_ => Task.FromResult(Reread(file)))
                : c => openFrom(result.BodyOffset, c);
            var (verdict, edits) = await client.MessageAsync(header, body, maxBody, ct);
            using (edits)
            {
                if (verdict is { Decision: MilterDecision.Hold }) result.Hold ??= verdict.Reply;
                else if (verdict is not null) { result.Verdict = verdict; result.Notes.Add($"{client.Name}: {verdict.Kind}"); return result; }
                changed |= Apply(edits, client, header, result);
            }
        }
        if (changed || result.Body is not null) result.Header = header; // a new body goes behind the header as it stands
        return result;
    }

    /// <summary>One milter's changes onto the message as it stands; true when the header changed.</summary>
    private static bool Apply(MilterEdits edits, MilterClient client, MilterHeader header, MilterMessageResult result)
    {
        foreach (var change in edits.Headers) header.Apply(change, client.LeadingSpace);
        if (edits.Body is { } body)
        {
            result.Body?.Dispose();
            result.Body = body;
            edits.Detach();
        }
        if (edits.Sender is { } sender) result.Sender = Bare(sender.Address);
        result.AddedRecipients.AddRange(edits.AddedRecipients.Select(r => Bare(r.Address)));
        result.DeletedRecipients.AddRange(edits.DeletedRecipients.Select(Bare));
        if (edits.Quarantine is { } reason) result.Hold ??= reason;
        if (edits.Summary() is { Length: > 0 } summary) result.Notes.Add($"{client.Name}: {summary}");
        return edits.Headers.Count > 0;
    }

    /// <summary>The replacement body from its start, for the next milter or for storage; the file stays open.</summary>
    public static Stream Reread(FileStream file)
    {
        file.Flush();
        return new FileStream(file.Name, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, FileOptions.Asynchronous);
    }

    /// <summary>An address without the angle brackets milters put around it.</summary>
    private static string Bare(string address) => address.StartsWith('<') && address.EndsWith('>') ? address[1..^1] : address;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients) await client.DisposeAsync();
    }
}

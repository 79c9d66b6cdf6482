using Microsoft.Extensions.Logging;
using Mta.Ingress.Metrics;

namespace Mta.Ingress.Milter;

/// <summary>The configured milters, parsed once: where each is, its settings, and the macros per event.</summary>
/// <param name="Endpoints">The milters, in the order they are called.</param>
/// <param name="MacroNames">Macro names per event (Postfix's <c>milter_*_macros</c>).</param>
/// <param name="DaemonName">The <c>{daemon_name}</c> macro (Postfix's <c>milter_macro_daemon_name</c>).</param>
public sealed record MilterSettings(IReadOnlyList<MilterEndpoint> Endpoints, IReadOnlyDictionary<MilterCommand, string[]> MacroNames, string DaemonName)
{
    /// <summary>The milter settings of <paramref name="options"/>; null when no milter is configured. Throws <see cref="FormatException"/> on a bad list.</summary>
    public static MilterSettings? From(IngressOptions options, string hostname)
    {
        var defaults = MilterEndpoint.Defaults(MilterEndpoint.ParseAction(options.MilterDefaultAction),
            TimeSpan.FromSeconds(options.MilterConnectTimeoutSeconds), TimeSpan.FromSeconds(options.MilterCommandTimeoutSeconds),
            TimeSpan.FromSeconds(options.MilterContentTimeoutSeconds), (uint)options.MilterProtocol);
        var endpoints = MilterEndpoint.ParseList(options.Milters, defaults);
        return endpoints.Count == 0 ? null
            : new MilterSettings(endpoints, MilterMacros.Names(options.MilterMacros), string.IsNullOrEmpty(options.MilterMacroDaemonName) ? hostname : options.MilterMacroDaemonName);
    }
}

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
    /// <param name="ct">Cancellation.</param>
    public async Task<MilterMessageResult> MessageAsync(ReadOnlyMemory<byte> head, long size, Func<long, CancellationToken, Task<Stream>> openFrom,
        CancellationToken ct)
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
            var (verdict, edits) = await client.MessageAsync(header, body, ct);
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

using Microsoft.Extensions.Logging;
using Mta.Ingress.Acceptance;
using Mta.Ingress.Milter;
using Mta.Mail.Contracts;

namespace Mta.Ingress.Smtp;

// The milters (Postfix's smtpd_milter.c and cleanup_milter.c): each event at its SMTP moment, and their answer to the
// finished message — refused, discarded, held, or changed — before the 250.
public sealed partial class SmtpSession
{
    /// <summary>The session's milters; null when none is configured.</summary>
    private MilterChain? _milters;

    /// <summary>
    /// What a command waits for before it is answered (a milter event, a shared rate), run once the command is handled:
    /// the session's one place for a command's asynchronous part.
    /// </summary>
    private Func<CancellationToken, Task>? _pendingStep;

    /// <summary>A transaction the milters heard of ended without its message: they get SMFIC_ABORT before the next event.</summary>
    private bool _milterAbortOwed;

    /// <summary>
    /// A milter asked, during the transaction, for the message to be held (the reason) or discarded; cleared when a
    /// MAIL starts the next transaction and once the message phase is over.
    /// </summary>
    private string? _milterHold;
    private bool _milterDiscard;

    /// <summary>What the milters did to the message last accepted, for its log line.</summary>
    private string? _milterNotes;

    /// <summary>
    /// Connects the milters and sends the connect event; the greeting follows from the answer, as in Postfix: a 5xx
    /// gives <c>554 … not accepting connections</c> (and every MAIL is refused), a 421 ends the session.
    /// </summary>
    private async Task<string> GreetingAsync(CancellationToken ct)
    {
        if (services.Milters is not { } settings) return $"220 {hostname} ESMTP";
        _milters = new MilterChain(settings, new MilterFacts
        {
            Hostname = hostname, DaemonName = settings.DaemonName, Client = endpoints.Remote ?? new System.Net.IPEndPoint(client, 0), Local = endpoints.Local,
        }, log, metrics);
        UpdateTlsFacts();
        var refusal = MilterRefusal(await _milters.ConnectAsync(ct), "CONNECT");
        if (refusal is null || refusal[0] == '4' && !refusal.StartsWith("421", StringComparison.Ordinal)) return $"220 {hostname} ESMTP";
        if (refusal[0] == '5')
        {
            _errors++;
            return $"554 {hostname} ESMTP not accepting connections";
        }
        _quit = true;
        return $"421 {hostname} Service unavailable - try again later";
    }

    /// <summary>What the milters' verdict on an envelope event means here: the reply that refuses the command, or null.</summary>
    private string? MilterRefusal(MilterVerdict? verdict, string where)
    {
        switch (verdict)
        {
            case null:
                return null;
            case { Decision: MilterDecision.Hold }:
                _milterHold ??= verdict.Reply;
                LogMilter("milter-hold", where, verdict.Reply);
                return null;
            case { Decision: MilterDecision.Discard }:
                _milterDiscard = true;
                LogMilter("milter-discard", where, verdict.Reply);
                return null;
            default:
                LogMilter("milter-reject", where, verdict.Reply);
                if (verdict.Decision == MilterDecision.Shutdown || verdict.Reply.StartsWith("421", StringComparison.Ordinal)) _quit = true;
                return verdict.Reply;
        }
    }

    /// <summary>Postfix's line for a milter decision: <c>milter-reject: RCPT from [addr]: 550 …; from=&lt;…&gt; helo=&lt;…&gt;</c>.</summary>
    private void LogMilter(string action, string where, string text)
        => log.LogInformation("{QueueId}: {Action}: {Where} from [{Client}]: {Text}; from=<{Sender}> helo=<{Helo}>",
            _milters?.Facts.QueueId ?? "NOQUEUE", action, where, client, text.Replace("\r\n", " "), _mail?.Sender ?? _milters?.Facts.Sender, _helo);

    private void UpdateTlsFacts()
    {
        if (_milters is null || _tlsInfo is null) return;
        var parts = _tlsInfo.Split(" with cipher ");
        _milters.Facts.Tls = (parts[0], parts.Length > 1 ? parts[1] : "");
    }

    /// <summary>Runs what the last command left for the milters: an owed abort first, then its event.</summary>
    private async Task RunPendingStepAsync(CancellationToken ct)
    {
        if (_milterAbortOwed && _milters is not null)
        {
            _milterAbortOwed = false;
            await _milters.AbortAsync(ct);
        }
        if (_pendingStep is not { } step) return;
        _pendingStep = null;
        await step(ct);
    }

    /// <summary>The DATA event (for DATA, or the first BDAT): the refusal, or null to go on.</summary>
    private async Task<string?> MilterDataAsync(CancellationToken ct)
        => _milters is null || _milterDiscard ? null : MilterRefusal(await _milters.DataAsync(ct), "DATA");

    /// <summary>An unknown command: a milter may answer it in place of the 502.</summary>
    private Next UnknownCommand(string line)
    {
        if (_milters is null) return Refuse("502 5.5.2 Error: command not recognized");
        _pendingStep = async ct =>
        {
            var verdict = await _milters.UnknownAsync(line, ct);
            Error(verdict is { Decision: MilterDecision.Refuse or MilterDecision.Shutdown } ? MilterRefusal(verdict, "UNKNOWN")! : "502 5.5.2 Error: command not recognized");
        };
        return Next.Command;
    }

    /// <summary>
    /// The message phase: the milters read the message where it lies and answer. Returns the envelope and content to
    /// store (changed as they asked), or null when the message was refused or discarded and answered here.
    /// </summary>
    private async Task<(IncomingEnvelope Envelope, SpoolWriter Content)?> MilterMessageAsync(IncomingEnvelope envelope, SpoolWriter content, CancellationToken ct)
    {
        if (_milterDiscard) return await DiscardAsync(envelope, content, "milter triggers DISCARD action", ct);
        _milters!.Facts.QueueId = envelope.Id;
        using var result = await _milters.MessageAsync(content.HeadMemory, envelope.Size, content.OpenReadAsync, options.MessageSizeLimit, ct);
        _milterNotes = result.Notes.Count > 0 ? string.Join("; ", result.Notes) : null;
        if (result.Verdict is { Decision: MilterDecision.Discard } discard) return await DiscardAsync(envelope, content, discard.Reply, ct);
        if (result.Verdict is { } verdict)
        {
            Error(MilterRefusal(verdict, "END-OF-MESSAGE")!);
            await content.DeleteStoredAsync(ct);
            return null;
        }
        var changed = Changed(envelope, result);
        if (changed.Recipients.Count == 0) return await DiscardAsync(envelope, content, "no recipients left after the milters", ct);
        if (!result.ChangesContent) return (changed, content);
        var rewritten = await RewriteAsync(content, result, ct);
        return (changed with { Id = rewritten.Name, BlobName = rewritten.Name, Size = rewritten.Written }, rewritten);
    }

    /// <summary>
    /// The envelope as the milters left it: sender, recipients, and the hold queue's reason. An address a milter gives
    /// that a client could not have given (bad syntax, a domain that is not one) is logged and left out.
    /// </summary>
    private IncomingEnvelope Changed(IncomingEnvelope envelope, MilterMessageResult result)
    {
        var recipients = envelope.Recipients.Where(r => !result.DeletedRecipients.Contains(r, StringComparer.OrdinalIgnoreCase)).ToList();
        foreach (var added in result.AddedRecipients)
            if (Usable(envelope.Id, added, "recipient") is { Length: > 0 } rcpt && !recipients.Contains(rcpt, StringComparer.OrdinalIgnoreCase))
                recipients.Add(rcpt);
        var sender = result.Sender is null ? envelope.Sender : Usable(envelope.Id, result.Sender, "sender") ?? envelope.Sender;
        return envelope with { Sender = sender, Recipients = recipients, Hold = _milterHold ?? result.Hold };
    }

    /// <summary>A milter's address in the form the stages take (parsed as MAIL and RCPT parse theirs), or null when it is none.</summary>
    private string? Usable(string queueId, string address, string what)
    {
        if (Paths.TryParse("<" + address + ">", out var parsed, out _, out _) && Mta.Mail.Routing.Address.WithAsciiDomain(parsed) is { } normal
            && (parsed.Length > 0 || what == "sender"))
            return normal;
        log.LogWarning("{QueueId}: warning: milter {What} <{Address}> ignored: not an address", queueId, what, Sanitize(address));
        return null;
    }

    /// <summary>Accepts and drops the message, as a milter's DISCARD asks (the client hears 250, as from Postfix).</summary>
    private async Task<(IncomingEnvelope, SpoolWriter)?> DiscardAsync(IncomingEnvelope envelope, SpoolWriter content, string why, CancellationToken ct)
    {
        LogMilter("milter-discard", "END-OF-MESSAGE", why);
        await content.DeleteStoredAsync(ct);
        Reply($"250 2.0.0 Ok: queued as {envelope.Id}");
        return null;
    }

    /// <summary>
    /// Writes the changed message: the new header, the empty line, then the body (the new one, or the original read
    /// from where it lies). A message already in storage gets a new queue id; the original goes.
    /// </summary>
    private async Task<SpoolWriter> RewriteAsync(SpoolWriter content, MilterMessageResult result, CancellationToken ct)
    {
        var fresh = content.Stored ? acceptor.NewMessage(clock.GetUtcNow()) : content.Successor();
        try
        {
            // A message that had no header, and still has none, stays without the empty line that would end one.
            if (result.Header!.Fields.Count > 0 || result.BodyOffset > 0) { fresh.Write(result.Header.ToBytes()); fresh.Write("\r\n"u8); }
            await using (var body = result.Body is { } file ? MilterChain.Reread(file) : await content.OpenReadAsync(result.BodyOffset, ct))
                await CopyAsync(body, fresh, ct);
            await content.DeleteStoredAsync(ct);
            return fresh;
        }
        catch
        {
            fresh.Dispose();
            throw;
        }
    }

    /// <summary>Copies into a spool writer a block at a time: bounded memory for a large message.</summary>
    private static async Task CopyAsync(Stream from, SpoolWriter to, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await from.ReadAsync(buffer, ct)) > 0)
        {
            to.Write(buffer.AsSpan(0, read));
            if (to.BlockReady) await to.StageAsync(ct);
        }
    }
}

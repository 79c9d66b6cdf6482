using Microsoft.Extensions.Logging;
using Mta.Ingress.Acceptance;
using Mta.Mail.Contracts;

namespace Mta.Ingress.Smtp;

// DATA and what every message gets at its end (by DATA or BDAT): the envelope, the checks, storage and the reply.
public sealed partial class SmtpSession
{
    private Next Data(string arg)
    {
        if (arg.Length > 0) return Refuse("501 5.5.4 Syntax: DATA");
        if (_mail is null) return Refuse("503 5.5.1 Error: need MAIL command");
        if (_mail.Recipients.Count == 0) return Refuse("554 5.5.1 Error: no valid recipients");
        if (_mail.Chunks is not null) return Refuse("503 5.5.1 Error: DATA after BDAT");
        return Next.Data; // 354 once the milters had the DATA event
    }

    /// <summary>The end of a DATA message: answered, stored or refused, and the transaction over.</summary>
    private async Task EndDataAsync(CancellationToken stopping)
    {
        var (data, content) = (_data!, _content!);
        _data = null;
        _content = null;
        try
        {
            await FinishDataAsync(content, data.Size, data.TooBig, stopping, Refusal(data.BareLineEnding, data.LineTooLong, content.Header));
        }
        finally
        {
            content.Dispose();
        }
    }

    /// <summary>Why a message that reached its end (by DATA or BDAT) is refused anyway, or null.</summary>
    private string? Refusal(bool bareLineEnding, bool lineTooLong, HeaderMeter header)
    {
        if (!header.Within(options.HeaderBlockSizeLimit, options.HeaderFieldLimit))
        {
            log.LogInformation("reject: {Verb} from [{Client}]: 552 5.3.4 message header too big ({Octets} octets, {Fields} fields)",
                _verb, client, header.Octets > header.Cap ? $"over {header.Cap}" : header.Octets, header.Fields);
            return $"552 5.3.4 Error: message header too big (at most {options.HeaderBlockSizeLimit} octets and {options.HeaderFieldLimit} fields)";
        }
        if (bareLineEnding && options.BareLineEndings != "normalize")
        {
            log.LogInformation("reject: {Verb} from [{Client}]: 550 5.5.2 Error: bare <CR> or <LF> received", _verb, client);
            return "550 5.5.2 Error: bare <CR> or <LF> received";
        }
        if (lineTooLong)
            return $"500 5.5.2 Error: message line longer than {options.TextLineLimit} octets";
        return null;
    }

    private async Task FinishDataAsync(SpoolWriter content, long size, bool tooBig, CancellationToken ct, string? refusal = null)
    {
        var mail = _mail!;
        ResetTransaction();
        _milterAbortOwed = false; // the message reached its end: the milters hear of it, or an abort now
        if (tooBig) refusal = "552 5.3.4 Error: message file too big";
        if (refusal is not null || content.Failure is not null || _milters is null)
        {
            if (refusal is not null) Error(refusal);
            if (_milters is not null) await _milters.AbortAsync(ct);
            if (refusal is null) await StoreAsync(Envelope(mail, content.Name, size), content, ct);
            return;
        }
        (IncomingEnvelope Envelope, SpoolWriter Content)? milters;
        try
        {
            milters = await MilterMessageAsync(Envelope(mail, content.Name, size), content, ct);
        }
        catch (Exception e) when (e is Azure.RequestFailedException or IOException)
        {
            // The spool could not give the message back to the milters: not acknowledged, so the client sends it again.
            // The milters were left mid-message, so the session ends rather than talk to them out of step.
            log.LogWarning("{QueueId}: not accepted from [{Client}]: reading it back for the milters failed: {Error}", content.Name, client, e.Message);
            Reply("421 4.3.0 " + hostname + " Error: queue file read error, closing transmission channel");
            _quit = true;
            return;
        }
        finally
        {
            (_milterHold, _milterDiscard) = (null, false);
        }
        if (milters is not { } changed) return;
        try
        {
            await StoreAsync(changed.Envelope, changed.Content, ct);
        }
        finally
        {
            if (changed.Content != content) changed.Content.Dispose();
        }
    }

    /// <summary>The envelope the stages get: who sent what to whom, how (RFC 3848 protocol keywords) and when.</summary>
    private IncomingEnvelope Envelope(MailTransaction mail, string id, long size)
    {
        var smtpUtf8 = mail.Parameters.SmtpUtf8;
        return new IncomingEnvelope
        {
            Id = id,
            Sender = mail.Sender,
            Recipients = mail.Recipients.ToList(),
            ClientAddress = client.ToString(),
            Helo = _helo ?? "unknown",
            ArrivalTime = clock.GetUtcNow(),
            Size = size,
            BlobName = id,
            ReceivedBy = hostname,
            // RFC 6531 §3.7.3 puts UTF8 in front for SMTPUTF8 transactions.
            Protocol = (smtpUtf8 ? "UTF8SMTP" : _esmtp ? "ESMTP" : "SMTP") + (_tls && _esmtp ? "S" : "") + (_user is not null ? "A" : ""),
            SmtpUtf8 = smtpUtf8,
            TrustedClient = _user is not null || relay.IsTrusted(client),
            Login = _user,
            Tls = _tls ? _tlsInfo ?? "TLS" : null,
            Dsn = mail.Dsn,
            Verp = mail.Parameters.Verp,
        };
    }

    /// <summary>Hands the message to the acceptor (cleanup, storage, queues) and answers: 250 with the queue id, or why not.</summary>
    private async Task StoreAsync(IncomingEnvelope envelope, SpoolWriter content, CancellationToken ct)
    {
        var storing = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            if (await acceptor.AcceptAsync(envelope, content, ct) is { } refused)
            {
                Error(refused);
                return;
            }
        }
        catch (StorageUnavailableException e)
        {
            log.LogWarning("{QueueId}: not accepted from [{Client}]: {Error}", envelope.Id, client, e.Message);
            Reply("451 4.3.0 Error: queue file write error");
            return;
        }
        metrics?.Accepted(envelope.Size, System.Diagnostics.Stopwatch.GetElapsedTime(storing), _tls);
        // One line per transaction, in Postfix's key=value manner (smtpd's client= and qmgr's from=/size=/nrcpt=).
        log.LogInformation("{QueueId}: client=[{Client}], helo=<{Helo}>, from=<{Sender}>, size={Size}, nrcpt={Count}, proto={Proto}, tls={Tls}, status={Status}{Milters}",
            envelope.Id, client, _helo, envelope.Sender, envelope.Size, envelope.Recipients.Count, envelope.Protocol, envelope.Tls ?? "none",
            envelope.Hold is null ? "queued" : "held", _milterNotes is null ? "" : $", milters=({_milterNotes})");
        _milterNotes = null;
        Reply($"250 2.0.0 Ok: queued as {envelope.Id}");
    }
}

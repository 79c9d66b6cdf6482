using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Mta.Ingress.Acceptance;
using Mta.Ingress.Policy;
using Mta.Mail.Contracts;

namespace Mta.Ingress.Smtp;

/// <summary>
/// One SMTP conversation (RFC 5321) over a pipe pair. Commands are handled in order as they
/// arrive; replies are flushed whenever the client's input is drained, which is what makes
/// PIPELINING work without extra state.
/// </summary>
public sealed class SmtpSession(
    PipeReader input,
    PipeWriter output,
    IPAddress client,
    IngressOptions options,
    string hostname,
    string localDomain,
    RelayPolicy relay,
    MessageAcceptor acceptor,
    TimeProvider clock,
    ILogger log)
{
    /// <summary>RFC 5321 §4.5.3.1.4: command line including CRLF.</summary>
    public const int MaxCommandLine = 512;

    private string? _helo;
    private bool _esmtp;
    private string? _sender;
    private readonly List<string> _recipients = [];
    private int _errors;
    private bool _quit;

    /// <summary>
    /// Runs the conversation until QUIT, disconnect, timeout or too many errors. When
    /// <paramref name="draining"/> fires (the pod is shutting down) a client waiting between
    /// commands gets <c>421</c> at once, while a message in DATA is still read and stored.
    /// </summary>
    public async Task RunAsync(CancellationToken stopping, CancellationToken draining = default)
    {
        log.LogInformation("connect from [{Client}]", client);
        Reply($"220 {hostname} ESMTP");
        var skipToLineEnd = false;
        DataReader? data = null;
        MemoryStream? content = null;
        try
        {
            while (!_quit)
            {
                await output.FlushAsync(stopping);
                ReadResult result;
                using (var timeout = data is null
                    ? CancellationTokenSource.CreateLinkedTokenSource(stopping, draining)
                    : CancellationTokenSource.CreateLinkedTokenSource(stopping))
                {
                    timeout.CancelAfter(TimeSpan.FromSeconds(options.TimeoutSeconds));
                    try { result = await input.ReadAsync(timeout.Token); }
                    catch (OperationCanceledException) when (data is null && draining.IsCancellationRequested && !stopping.IsCancellationRequested)
                    {
                        Reply("421 4.3.2 " + hostname + " Service shutting down, closing transmission channel");
                        break;
                    }
                    catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
                    {
                        log.LogInformation("timeout after {State} from [{Client}]", data is null ? "command" : "DATA", client);
                        Reply("421 4.4.2 " + hostname + " Error: timeout exceeded");
                        break;
                    }
                }
                var buffer = result.Buffer;

                while (!_quit)
                {
                    if (data is not null)
                    {
                        if (!data.Process(ref buffer)) break;
                        await FinishDataAsync(data, content!, stopping);
                        data = null;
                        content = null;
                        continue;
                    }

                    var lf = buffer.PositionOf((byte)'\n');
                    if (lf is null)
                    {
                        if (buffer.Length > MaxCommandLine)
                        {
                            // Bounded memory: an endless line is dropped, then answered once it ends.
                            buffer = buffer.Slice(buffer.End);
                            skipToLineEnd = true;
                        }
                        break;
                    }
                    var line = buffer.Slice(0, lf.Value);
                    buffer = buffer.Slice(buffer.GetPosition(1, lf.Value));
                    if (skipToLineEnd || line.Length + 1 > MaxCommandLine)
                    {
                        skipToLineEnd = false;
                        Error("500 5.5.2 Error: line too long");
                        continue;
                    }
                    var text = Encoding.UTF8.GetString(line).TrimEnd('\r');
                    if (Handle(text))
                    {
                        content = new MemoryStream();
                        data = new DataReader(content, options.MessageSizeLimit);
                    }
                    if (_errors >= options.HardErrorLimit)
                    {
                        log.LogInformation("too many errors after {Command} from [{Client}]", Verb(text), client);
                        Reply("421 4.7.0 " + hostname + " Error: too many errors");
                        _quit = true;
                    }
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted) break;
            }
            await output.FlushAsync(stopping);
        }
        catch (Exception e) when (e is IOException or ConnectionResetException or OperationCanceledException or InvalidOperationException)
        {
            log.LogDebug("lost connection from [{Client}]: {Error}", client, e.Message);
        }
        finally
        {
            content?.Dispose();
            log.LogInformation("disconnect from [{Client}]", client);
        }
    }

    private static string Verb(string line)
    {
        var space = line.IndexOf(' ');
        return (space < 0 ? line : line[..space]).ToUpperInvariant();
    }

    /// <summary>Handles one command line; returns true when the DATA phase begins.</summary>
    private bool Handle(string line)
    {
        var verb = Verb(line);
        var arg = line.Length > verb.Length ? line[(verb.Length + 1)..].Trim() : "";
        switch (verb)
        {
            case "EHLO":
            case "HELO":
                if (arg.Length == 0) { Error($"501 Syntax: {verb} hostname"); return false; }
                _helo = Sanitize(arg);
                _esmtp = verb == "EHLO";
                ResetTransaction();
                if (_esmtp)
                    Reply($"250-{hostname}", "250-PIPELINING", $"250-SIZE {options.MessageSizeLimit}",
                        "250-8BITMIME", "250 ENHANCEDSTATUSCODES");
                else
                    Reply($"250 {hostname}");
                return false;
            case "MAIL":
                Mail(arg);
                return false;
            case "RCPT":
                Rcpt(arg);
                return false;
            case "DATA":
                if (arg.Length > 0) { Error("501 5.5.4 Syntax: DATA"); return false; }
                if (_sender is null) { Error("503 5.5.1 Error: need MAIL command"); return false; }
                if (_recipients.Count == 0) { Error("554 5.5.1 Error: no valid recipients"); return false; }
                Reply("354 End data with <CR><LF>.<CR><LF>");
                return true;
            case "RSET":
                ResetTransaction();
                Reply("250 2.0.0 Ok");
                return false;
            case "NOOP":
                Reply("250 2.0.0 Ok");
                return false;
            case "VRFY":
                Reply("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
                return false;
            case "HELP":
                Reply("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT");
                return false;
            case "QUIT":
                Reply("221 2.0.0 Bye");
                _quit = true;
                return false;
            default:
                Error("502 5.5.2 Error: command not recognized");
                return false;
        }
    }

    private void Mail(string arg)
    {
        if (_helo is null) { Error("503 5.5.1 Error: send HELO/EHLO first"); return; }
        if (_sender is not null) { Error("503 5.5.1 Error: nested MAIL command"); return; }
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) { Error("501 5.5.4 Syntax: MAIL FROM:<address>"); return; }
        if (!Paths.TryParse(arg[5..], out var address, out var parameters, out var problem))
        {
            Error($"501 5.1.7 Bad sender address syntax{problem}");
            return;
        }
        foreach (var (key, value) in parameters)
        {
            if (!_esmtp) { Error("555 5.5.4 Unsupported option: " + key); return; }
            switch (key)
            {
                case "SIZE":
                    if (!long.TryParse(value, out var size) || size < 0) { Error("501 5.5.4 Bad message size syntax"); return; }
                    if (size > options.MessageSizeLimit) { Error("552 5.3.4 Message size exceeds fixed limit"); return; }
                    break;
                case "BODY":
                    if (value is not ("7BIT" or "8BITMIME")) { Error("501 5.5.4 Bad BODY parameter"); return; }
                    break;
                default:
                    Error("555 5.5.4 Unsupported option: " + key);
                    return;
            }
        }
        _sender = address;
        Reply("250 2.1.0 Ok");
    }

    private void Rcpt(string arg)
    {
        if (_sender is null) { Error("503 5.5.1 Error: need MAIL command"); return; }
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) { Error("501 5.5.4 Syntax: RCPT TO:<address>"); return; }
        if (!Paths.TryParse(arg[3..], out var address, out var parameters, out var problem) || address.Length == 0)
        {
            Error($"501 5.1.3 Bad recipient address syntax{problem}");
            return;
        }
        if (parameters.Count > 0) { Error("555 5.5.4 Unsupported option: " + parameters[0].Key); return; }
        if (_recipients.Count >= options.RecipientLimit) { Reply("452 4.5.3 Error: too many recipients"); return; }
        if (!address.Contains('@') && address.Equals("postmaster", StringComparison.OrdinalIgnoreCase))
            address = "postmaster@" + localDomain; // Postfix: the bare name is a local address
        if (!relay.MayRelay(client, address))
        {
            log.LogInformation("reject: RCPT from [{Client}]: 554 5.7.1 <{Recipient}>: Relay access denied; from=<{Sender}> helo=<{Helo}>",
                client, address, _sender, _helo);
            Error($"554 5.7.1 <{address}>: Relay access denied");
            return;
        }
        _recipients.Add(address);
        Reply("250 2.1.5 Ok");
    }

    private async Task FinishDataAsync(DataReader data, MemoryStream content, CancellationToken ct)
    {
        var sender = _sender!;
        var recipients = _recipients.ToList();
        ResetTransaction();
        if (data.TooBig)
        {
            Error("552 5.3.4 Error: message file too big");
            return;
        }

        var now = clock.GetUtcNow();
        var id = QueueId.New(now);
        var envelope = new IncomingEnvelope
        {
            Id = id,
            Sender = sender,
            Recipients = recipients,
            ClientAddress = client.ToString(),
            Helo = _helo ?? "unknown",
            ArrivalTime = now,
            Size = data.Size,
            BlobName = id,
            ReceivedBy = hostname,
            Protocol = _esmtp ? "ESMTP" : "SMTP",
        };
        content.Position = 0;
        try
        {
            await acceptor.AcceptAsync(envelope, content, ct);
        }
        catch (StorageUnavailableException e)
        {
            log.LogWarning("{QueueId}: not accepted from [{Client}]: {Error}", id, client, e.Message);
            Reply("451 4.3.0 Error: queue file write error");
            return;
        }
        log.LogInformation("{QueueId}: client=[{Client}], from=<{Sender}>, size={Size}, nrcpt={Count} (queue active)",
            id, client, sender, data.Size, recipients.Count);
        Reply($"250 2.0.0 Ok: queued as {id}");
    }

    private void ResetTransaction()
    {
        _sender = null;
        _recipients.Clear();
    }

    private void Error(string reply)
    {
        _errors++;
        Reply(reply);
    }

    private void Reply(params string[] lines)
    {
        foreach (var l in lines)
        {
            var bytes = Encoding.UTF8.GetBytes(l + "\r\n");
            output.Write(bytes);
        }
    }

    /// <summary>Printable ASCII only, at most 255 characters: the HELO name ends up in a Received header.</summary>
    private static string Sanitize(string text)
    {
        var sb = new StringBuilder(Math.Min(text.Length, 255));
        foreach (var c in text)
        {
            if (sb.Length == 255) break;
            sb.Append(c is > ' ' and < (char)127 ? c : '?');
        }
        return sb.ToString();
    }
}

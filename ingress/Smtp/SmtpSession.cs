using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using System.Net.Security;
using Mta.Ingress.Acceptance;
using Mta.Ingress.Auth;
using Mta.Ingress.Tls;
using Mta.Ingress.Policy;
using Mta.Mail.Contracts;
using Mta.Mail.Routing;

namespace Mta.Ingress.Smtp;

/// <summary>
/// One SMTP conversation (RFC 5321) over a pipe pair. Commands are handled in order as they
/// arrive; replies are flushed whenever the client's input is drained, which is what makes
/// PIPELINING work without extra state.
/// </summary>
/// <remarks>Why the protocol layer is ours rather than the SmtpServer package: docs/adr/0002.</remarks>
public sealed class SmtpSession(PipeReader input, PipeWriter output, IPAddress client, Listener listener, SmtpSessionServices services,
    string? implicitTls = null)
{
    // The shared services under the short names the session's code has always used.
    private IngressOptions options => services.Options;
    private string hostname => services.Hostname;
    private string localDomain => services.LocalDomain;
    private RelayPolicy relay => services.Relay;
    private LocalRecipients localRecipients => services.LocalRecipients;
    private MessageAcceptor acceptor => services.Acceptor;
    private TlsCertificates certificates => services.Certificates;
    private SaslUsers users => services.Users;
    private TimeProvider clock => services.Clock;
    private ILogger log => services.Log;
    private Metrics.IngressMetrics? metrics => services.Metrics;
    private Mta.Mail.Cleanup.ContentInspector? inspector => services.Inspector;
    private Verification.AddressVerifier? verifier => services.Verifier;

    private string _verb = "CONNECT";

    private PipeReader _input = input;
    private string? _tlsInfo = implicitTls;
    private PipeWriter _output = output;
    private bool _tls = listener == Listener.Submissions; // Kestrel already did the handshake
    private string? _user;
    private readonly SaslExchange _sasl = new();

    private enum Next { Command, Data, StartTls, Chunk, Login, Verify }

    /// <summary>A name and password waiting to be checked, off the session's I/O path.</summary>
    private SaslCredentials? _login;

    private sealed record PendingRecipient(string Address, RcptParameters Dsn);

    /// <summary>A RCPT waiting for its next hop's answer (<see cref="VerifyRecipientAsync"/>).</summary>
    private PendingRecipient? _probe;

    // CHUNKING (RFC 3030): the message assembled from BDAT chunks, and the chunk being read.
    private bool _inChunk;
    private long _chunkRemaining;
    private bool _chunkLast;
    private string? _chunkError;

    /// <summary>RFC 5321 §4.5.3.1.4: command line including CRLF.</summary>
    public const int MaxCommandLine = 512;

    private string? _helo;
    private bool _esmtp;
    /// <summary>The mail transaction in progress, from MAIL to the end of its message or RSET.</summary>
    private MailTransaction? _mail;

    /// <summary>The message being read after DATA, and where it goes; null between messages.</summary>
    private DataReader? _data;

    private SpoolWriter? _content;

    /// <summary>An over-long command line is being dropped until its end.</summary>
    private bool _skipToLineEnd;
    private bool _pipelining;
    private int _junk;
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
        metrics?.SessionStarted();
        try
        {
            if (await TalkedFirstAsync(stopping)) return; // the finally below logs the disconnect
            Reply($"220 {hostname} ESMTP");
            while (!_quit)
            {
                await FlushAsync(stopping);
                if (await ReadAsync(stopping, draining) is not { } result) break;
                var (left, startTls) = await ConsumeAsync(result.Buffer, stopping);
                _input.AdvanceTo(left.Start, left.End);
                // A large message goes to storage a block at a time; the next read waits for it (back-pressure).
                if (_content?.BlockReady == true) await _content.StageAsync(stopping);
                if (_mail?.Chunks?.Writer is { BlockReady: true } chunks) await chunks.StageAsync(stopping);
                if (startTls && !await StartTlsAsync(stopping)) break;
                if (result.IsCompleted) break;
            }
            await FlushAsync(stopping);
        }
        catch (Exception e) when (e is IOException or ConnectionResetException or OperationCanceledException or InvalidOperationException or System.Security.Authentication.AuthenticationException)
        {
            log.LogDebug("lost connection from [{Client}]: {Error}", client, e.Message);
        }
        finally
        {
            _content?.Dispose();
            log.LogInformation("disconnect from [{Client}]", client);
            metrics?.SessionEnded();
        }
    }

    /// <summary>A client that talks before the greeting is not waiting for the server: a bot (RFC 5321 §4.3.1).</summary>
    private async Task<bool> TalkedFirstAsync(CancellationToken stopping)
    {
        if (!options.ForbidUnauthPipelining || !_input.TryRead(out var early)) return false;
        var talked = early.Buffer.Length > 0;
        _input.AdvanceTo(early.Buffer.Start);
        if (!talked) return false;
        log.LogInformation("improper command pipelining after CONNECT from [{Client}]", client);
        Reply("554 5.5.0 Error: SMTP protocol synchronization");
        await FlushAsync(stopping);
        return true;
    }

    /// <summary>
    /// What the client sent next, within the read deadline; null, with the <c>421</c> written, when the session ends
    /// (a timeout, or the pod shutting down while the client is between commands — a message in DATA is still read).
    /// </summary>
    private async Task<ReadResult?> ReadAsync(CancellationToken stopping, CancellationToken draining)
    {
        var midMessage = _data is not null || _inChunk;
        using var timeout = !midMessage
            ? CancellationTokenSource.CreateLinkedTokenSource(stopping, draining)
            : CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(ReadDeadline(midMessage, _data?.Size ?? _mail?.ChunkedSize ?? 0));
        try
        {
            return await _input.ReadAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!midMessage && draining.IsCancellationRequested && !stopping.IsCancellationRequested)
        {
            Reply("421 4.3.2 " + hostname + " Service shutting down, closing transmission channel");
            return null;
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            log.LogInformation("timeout after {State} from [{Client}]", _data is null ? "command" : "DATA", client);
            Reply("421 4.4.2 " + hostname + " Error: timeout exceeded");
            return null;
        }
    }

    /// <summary>
    /// Takes what it can of the input: message octets (DATA), chunk octets (BDAT), whole command lines. Returns what is
    /// left for the next read, and whether a TLS handshake comes next (anything after STARTTLS is dropped, RFC 3207 §6).
    /// </summary>
    private async Task<(ReadOnlySequence<byte> Left, bool StartTls)> ConsumeAsync(ReadOnlySequence<byte> buffer, CancellationToken stopping)
    {
        while (!_quit)
        {
            if (_data is not null)
            {
                if (!_data.Process(ref buffer)) break;
                await EndDataAsync(stopping);
                continue;
            }
            if (_inChunk)
            {
                buffer = TakeChunk(buffer);
                if (_chunkRemaining > 0) break;
                await EndChunkAsync(stopping);
                continue;
            }
            if (!TryTakeLine(ref buffer, out var text)) break;
            if (text is null) continue; // too long: answered
            if (await AfterCommandAsync(Handle(text), buffer, stopping)) return (buffer.Slice(buffer.End), true);
            if (_errors >= options.HardErrorLimit)
            {
                log.LogInformation("too many errors after {Command} from [{Client}]", _verb, client);
                Reply("421 4.7.0 " + hostname + " Error: too many errors");
                _quit = true;
            }
        }
        return (buffer, false);
    }

    /// <summary>A whole command line off the input (false: none yet); null text when it was too long and has been answered.</summary>
    private bool TryTakeLine(ref ReadOnlySequence<byte> buffer, out string? text)
    {
        text = null;
        var lf = buffer.PositionOf((byte)'\n');
        if (lf is null)
        {
            if (buffer.Length > MaxCommandLine)
            {
                // Bounded memory: an endless line is dropped, then answered once it ends.
                buffer = buffer.Slice(buffer.End);
                _skipToLineEnd = true;
            }
            return false;
        }
        var line = buffer.Slice(0, lf.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, lf.Value));
        if (_skipToLineEnd || line.Length + 1 > MaxCommandLine)
        {
            _skipToLineEnd = false;
            Error("500 5.5.2 Error: line too long");
            return true;
        }
        _commandWaitStarted = 0; // a whole line: the next command has its own deadline
        text = Encoding.UTF8.GetString(line).TrimEnd('\r');
        return true;
    }

    /// <summary>BDAT octets are taken as they are: no dot-stuffing, no line structure. Returns the input after them.</summary>
    private ReadOnlySequence<byte> TakeChunk(ReadOnlySequence<byte> buffer)
    {
        var take = Math.Min(buffer.Length, _chunkRemaining);
        _chunkRemaining -= take;
        if (_chunkError is null)
        {
            _mail!.ChunkedSize += take;
            _mail.Chunks!.Value.Reader.Write(buffer.Slice(0, take));
        }
        return buffer.Slice(take);
    }

    /// <summary>What a command leads to: a message, a chunk, a login or probe to finish, or TLS (true).</summary>
    private async Task<bool> AfterCommandAsync(Next next, ReadOnlySequence<byte> pending, CancellationToken stopping)
    {
        switch (next)
        {
            case Next.Data:
                _content = acceptor.NewMessage(clock.GetUtcNow());
                _data = new DataReader(_content, options.MessageSizeLimit, options.BareLineEndings == "normalize", options.TextLineLimit);
                if (Unsynchronized(pending, "DATA")) _quit = true;
                return false;
            case Next.Chunk:
                _inChunk = true;
                return false;
            case Next.Login:
                await LoginAsync(stopping);
                if (!_quit && Unsynchronized(pending, _verb)) _quit = true;
                return false;
            case Next.Verify:
                await VerifyRecipientAsync(stopping);
                return false;
            case Next.StartTls:
                return true;
            default:
                if (Unsynchronized(pending, _verb)) _quit = true;
                return false;
        }
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

    /// <summary>
    /// Postfix's smtpd_forbid_unauth_pipelining: more input already waiting after a command that must be answered
    /// first (or any command before EHLO offered PIPELINING) means the client does not read replies. Answers 554 and
    /// says the session ends. Replies are only sent when the buffer is used up, so nothing here can be a reaction to one.
    /// </summary>
    private bool Unsynchronized(ReadOnlySequence<byte> pending, string verb)
    {
        if (!options.ForbidUnauthPipelining || _user is not null || pending.Length == 0 || _quit) return false;
        if (_pipelining && !(Commands.TryGetValue(verb, out var command) && command.EndsGroup)) return false;
        var sample = Encoding.UTF8.GetString(pending.Slice(0, Math.Min(pending.Length, 100))).Split('\n')[0].TrimEnd('\r');
        log.LogInformation("improper command pipelining after {Verb} from [{Client}]: {Input}", verb, client, Sanitize(Loggable(verb, sample)));
        Reply("554 5.5.0 Error: SMTP protocol synchronization");
        return true;
    }

    /// <summary>
    /// What of the client's next input may be logged: nothing of an AUTH exchange (a response after <c>AUTH</c>, or an
    /// <c>AUTH</c> command's initial response), which carries credentials.
    /// </summary>
    private string Loggable(string verb, string input)
    {
        if (verb == "AUTH" || _sasl.InProgress) return "(authentication data, not logged)";
        var words = input.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        return words.Length > 0 && words[0].Equals("AUTH", StringComparison.OrdinalIgnoreCase)
            ? "AUTH " + (words.Length > 1 ? words[1] : "") + (words.Length > 2 ? " (initial response not logged)" : "")
            : input;
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

    private static string Verb(string line)
    {
        var space = line.IndexOf(' ');
        return (space < 0 ? line : line[..space]).ToUpperInvariant();
    }

    private long _messageStarted;

    /// <summary>When the command being waited for was first waited for: partial lines do not restart its clock.</summary>
    private long _commandWaitStarted;

    /// <summary>
    /// Sends the replies written so far, within the per-request timeout: a client that stops reading (its receive
    /// window full) cannot hold the session, whose write would otherwise wait for ever.
    /// </summary>
    private async Task FlushAsync(CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(TimeSpan.FromSeconds(options.TimeoutSeconds));
        await _output.FlushAsync(limit.Token);
    }

    /// <summary>
    /// How long the next read may take: the per-request timeout, and inside a message no later than the
    /// message's own deadline, which grows with the octets received at the minimum data rate
    /// (Postfix smtpd_min_data_rate with per-request deadlines), so a slow drip cannot hold a session forever.
    /// </summary>
    private TimeSpan ReadDeadline(bool midMessage, long received)
    {
        var perRead = TimeSpan.FromSeconds(options.TimeoutSeconds);
        if (!midMessage)
        {
            // Postfix's smtpd_per_record_deadline for commands: one command line in TimeoutSeconds, however it trickles in.
            _messageStarted = 0;
            if (_commandWaitStarted == 0) _commandWaitStarted = Environment.TickCount64;
            var rest = perRead - TimeSpan.FromMilliseconds(Environment.TickCount64 - _commandWaitStarted);
            return rest < TimeSpan.Zero ? TimeSpan.Zero : rest;
        }
        _commandWaitStarted = 0;
        if (options.MinDataRate <= 0) return perRead;
        if (_messageStarted == 0) _messageStarted = Environment.TickCount64;
        var allowed = TimeSpan.FromSeconds(options.TimeoutSeconds + (double)received / options.MinDataRate);
        var left = allowed - TimeSpan.FromMilliseconds(Environment.TickCount64 - _messageStarted);
        return left < TimeSpan.Zero ? TimeSpan.Zero : left < perRead ? left : perRead;
    }

    /// <summary>Handles one command line; says whether DATA or a TLS handshake comes next.</summary>
    private Next Handle(string line)
    {
        if (_sasl.InProgress)
        {
            _verb = "AUTH"; // a response to AUTH is credentials: never the name of anything in a log
            Answer(_sasl.Continue(line));
            return _login is null ? Next.Command : Next.Login;
        }
        var verb = Verb(line);
        _verb = verb.Length <= 10 && verb.All(char.IsAsciiLetter) ? verb : "UNKNOWN"; // bounded label values
        var arg = line.Length > verb.Length ? line[(verb.Length + 1)..].Trim() : "";
        if (!Commands.TryGetValue(verb, out var command))
        {
            Error("502 5.5.2 Error: command not recognized");
            return Next.Command;
        }
        if (command.Junk) Junk();
        return command.Run(this, verb, arg);
    }

    /// <summary>
    /// One SMTP command: its handler, whether it counts towards <c>smtpd_junk_command_limit</c>, and whether it may only
    /// end a pipelined group (RFC 2920 §3.1: its reply must be read before more is sent). Postfix's smtpd command table.
    /// </summary>
    private sealed record Command(Func<SmtpSession, string, string, Next> Run, bool Junk = false, bool EndsGroup = false);

    private static readonly Dictionary<string, Command> Commands = new()
    {
        ["EHLO"] = new((s, verb, arg) => s.Hello(verb, arg), EndsGroup: true),
        ["HELO"] = new((s, verb, arg) => s.Hello(verb, arg), EndsGroup: true),
        ["STARTTLS"] = new((s, _, arg) => s.StartTls(arg)),
        ["AUTH"] = new((s, _, arg) => s.Auth(arg), EndsGroup: true),
        ["MAIL"] = new((s, _, arg) => s.Mail(arg)),
        ["RCPT"] = new((s, _, arg) => s.Rcpt(arg)),
        ["DATA"] = new((s, _, arg) => s.Data(arg), EndsGroup: true),
        ["BDAT"] = new((s, _, arg) => s.Bdat(arg)),
        ["RSET"] = new((s, _, _) => s.Rset(), Junk: true),
        ["NOOP"] = new((s, _, _) => s.Answer("250 2.0.0 Ok"), Junk: true, EndsGroup: true),
        ["VRFY"] = new((s, _, _) => s.Answer("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"), Junk: true, EndsGroup: true),
        ["EXPN"] = new((s, _, _) => s.Refuse("502 5.5.2 Error: command not recognized"), EndsGroup: true),
        ["HELP"] = new((s, _, _) => s.Answer("214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"), Junk: true, EndsGroup: true),
        ["QUIT"] = new((s, _, _) => s.Quit(), EndsGroup: true),
    };

    private Next Answer(string reply)
    {
        Reply(reply);
        return Next.Command;
    }

    private Next Refuse(string reply)
    {
        Error(reply);
        return Next.Command;
    }

    private Next Hello(string verb, string arg)
    {
        if (arg.Length == 0) return Refuse($"501 Syntax: {verb} hostname");
        if (options.RejectInvalidHelo && !relay.IsTrusted(client) && !ValidHelo(arg))
        {
            log.LogInformation("reject: {Verb} from [{Client}]: 501 5.5.2 <{Helo}>: Helo command rejected: Invalid name", verb, client, Sanitize(arg));
            return Refuse($"501 5.5.2 <{Sanitize(arg)}>: Helo command rejected: Invalid name");
        }
        _helo = Sanitize(arg);
        _esmtp = verb == "EHLO";
        _pipelining = _esmtp;
        ResetTransaction();
        if (!_esmtp) return Answer($"250 {hostname}");
        var lines = new List<string> { hostname, "PIPELINING", $"SIZE {options.MessageSizeLimit}", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8", "CHUNKING" };
        if (!_tls && certificates.Configured) lines.Add("STARTTLS");
        if (_tls && AuthOffered && _user is null) lines.Add("AUTH PLAIN LOGIN"); // never before TLS
        Reply(lines.Select((l, i) => (i == lines.Count - 1 ? "250 " : "250-") + l).ToArray());
        return Next.Command;
    }

    private Next StartTls(string arg)
    {
        if (arg.Length > 0) return Refuse("501 5.5.4 Syntax: STARTTLS");
        if (_tls) return Refuse("554 5.5.1 Error: TLS already active");
        if (!certificates.Configured) return Refuse("502 5.5.1 Error: command not implemented");
        Reply("220 2.0.0 Ready to start TLS");
        return Next.StartTls;
    }

    private Next Data(string arg)
    {
        if (arg.Length > 0) return Refuse("501 5.5.4 Syntax: DATA");
        if (_mail is null) return Refuse("503 5.5.1 Error: need MAIL command");
        if (_mail.Recipients.Count == 0) return Refuse("554 5.5.1 Error: no valid recipients");
        if (_mail.Chunks is not null) return Refuse("503 5.5.1 Error: DATA after BDAT");
        Reply("354 End data with <CR><LF>.<CR><LF>");
        return Next.Data;
    }

    private Next Rset()
    {
        ResetTransaction();
        return Answer("250 2.0.0 Ok");
    }

    private Next Quit()
    {
        _quit = true;
        return Answer("221 2.0.0 Bye");
    }

    private Next Mail(string arg)
    {
        MailFrom(arg);
        return Next.Command;
    }

    private void MailFrom(string arg)
    {
        if (_helo is null) { Error("503 5.5.1 Error: send HELO/EHLO first"); return; }
        if (_mail is not null) { Error("503 5.5.1 Error: nested MAIL command"); return; }
        if (listener != Listener.Mx && _user is null) { Error("530 5.7.0 Authentication required"); return; }
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) { Error("501 5.5.4 Syntax: MAIL FROM:<address>"); return; }
        if (!Paths.TryParse(arg[5..], out var address, out var parameters, out var problem))
        {
            Error($"501 5.1.7 Bad sender address syntax{problem}");
            return;
        }
        if (MailParameters.Parse(parameters, _esmtp, options.MessageSizeLimit, out var refusal) is not { } given)
        {
            Error(refusal);
            return;
        }
        if (!given.SmtpUtf8 && !IsAscii(address))
        {
            Error("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
            return;
        }
        if (Address.WithAsciiDomain(address) is not { } normal)
        {
            Error("501 5.1.7 Bad sender address syntax (domain)");
            return;
        }
        address = normal;
        if (_user is not null && !relay.MaySendAs(_user, address))
        {
            // Postfix's reject_authenticated_sender_login_mismatch: a login sends only as the addresses it owns.
            log.LogInformation("reject: MAIL from [{Client}]: 553 5.7.1 <{Sender}>: Sender address rejected: not owned by user {User}", client, address, _user);
            Error($"553 5.7.1 <{address}>: Sender address rejected: not owned by user {_user}");
            return;
        }
        _mail = new MailTransaction(address, given);
        Reply("250 2.1.0 Ok");
    }

    private Next Rcpt(string arg)
    {
        RcptTo(arg);
        return _probe is null ? Next.Command : Next.Verify;
    }

    private void RcptTo(string arg)
    {
        if (_mail is null) { Error("503 5.5.1 Error: need MAIL command"); return; }
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) { Error("501 5.5.4 Syntax: RCPT TO:<address>"); return; }
        if (!Paths.TryParse(arg[3..], out var address, out var parameters, out var problem) || address.Length == 0)
        {
            Error($"501 5.1.3 Bad recipient address syntax{problem}");
            return;
        }
        if (RcptParameters.Parse(parameters, _esmtp, out var refusal) is not { } given) { Error(refusal); return; }
        if (!_mail.Parameters.SmtpUtf8 && !IsAscii(address)) { Error("553 5.6.7 Must declare SMTPUTF8 to send unicode address"); return; }
        // One form of the domain for every decision below and for every next hop (Address.NormalizeDomain).
        if (Address.WithAsciiDomain(address) is not { } normal) { Error("501 5.1.3 Bad recipient address syntax (domain)"); return; }
        address = normal;
        // An error, as Postfix counts recipients past the limit (smtpd_recipient_overshoot_limit): a flood of them ends the session.
        if (_mail.Recipients.Count >= options.RecipientLimit) { Error("452 4.5.3 Error: too many recipients"); return; }
        if (!address.Contains('@') && address.Equals("postmaster", StringComparison.OrdinalIgnoreCase))
            address = "postmaster@" + localDomain; // Postfix: the bare name is a local address
        if (RecipientRefusal(address) is { } refused) { Error(refused); return; }
        // Postfix's order: permit_mynetworks and permit_sasl_authenticated come before reject_unverified_recipient.
        if (options.VerifyRecipients && verifier is not null && _user is null && !relay.IsTrusted(client) && verifier.CanProbe(address))
        {
            _probe = new PendingRecipient(address, given);
            return;
        }
        AcceptRecipient(address, given);
    }

    /// <summary>
    /// Postfix's default smtpd_recipient_restrictions, in order (smtpd_check.c): relay access for those neither trusted
    /// nor logged in, then the local and relay recipient tables. The refusal, logged, or null.
    /// </summary>
    private string? RecipientRefusal(string address)
    {
        string? table = null;
        var reply = _user is null && !relay.MayRelay(client, address) ? $"554 5.7.1 <{address}>: Relay access denied" : null;
        if (reply is null && relay.IsLocal(address) && !localRecipients.Exists(address)) table = "local";
        else if (reply is null && !relay.IsKnownRelayRecipient(address)) table = "relay";
        if (table is not null) reply = $"550 5.1.1 <{address}>: Recipient address rejected: User unknown in {table} recipient table";
        if (reply is not null)
            log.LogInformation("reject: RCPT from [{Client}]: {Reply}; from=<{Sender}> helo=<{Helo}>", client, reply, _mail!.Sender, _helo);
        return reply;
    }

    private void AcceptRecipient(string address, RcptParameters dsn)
    {
        _mail!.Add(address, dsn);
        Reply("250 2.1.5 Ok");
    }

    /// <summary>Answers the pending RCPT from its next hop's answer (remembered, or asked now within the wait).</summary>
    private async Task VerifyRecipientAsync(CancellationToken ct)
    {
        var (address, dsn) = _probe!;
        _probe = null;
        var result = await verifier!.VerifyAsync(address, ct);
        if (result.Verdict == Verification.Verdict.Deliverable)
        {
            AcceptRecipient(address, dsn);
            return;
        }
        var reply = UnverifiedReply(address, result, options.UnverifiedRecipientRejectCode);
        log.LogInformation("reject: RCPT from [{Client}]: {Reply}; from=<{Sender}>", client, reply, _mail!.Sender);
        Error(reply);
    }

    /// <summary>
    /// Postfix's replies for <c>reject_unverified_recipient</c>: an address the next hop refused gets the configured code
    /// (<c>unverified_recipient_reject_code</c>), one without an answer yet a 450 (<c>unverified_recipient_defer_code</c>).
    /// </summary>
    internal static string UnverifiedReply(string address, Verification.VerifyResult result, int rejectCode)
    {
        var (code, what) = result.Verdict == Verification.Verdict.Undeliverable ? (rejectCode, "undeliverable address") : (450, "unverified address");
        var detail = result.Detail.Length > 200 ? result.Detail[..200] : result.Detail;
        return $"{code} {code / 100}.1.1 <{address}>: Recipient address rejected: {what}: {detail}";
    }

    /// <summary>
    /// <c>BDAT size [LAST]</c>. The chunk's octets follow whatever the reply, so a refused chunk is
    /// still read (and dropped); a size that cannot be parsed leaves no way to find the next command,
    /// so the session ends.
    /// </summary>
    private Next Bdat(string arg)
    {
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is < 1 or > 2 || !long.TryParse(parts[0], System.Globalization.NumberStyles.None, null, out var size)
            || parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase))
        {
            Reply("501 5.5.4 Syntax: BDAT count [LAST]", "421 4.7.0 " + hostname + " Error: cannot find the end of the chunk, closing");
            _quit = true;
            return Next.Command;
        }
        _chunkLast = parts.Length == 2;
        _chunkRemaining = size;
        _chunkError = _mail is null ? "503 5.5.1 Error: need MAIL command"
            : _mail.Recipients.Count == 0 ? "554 5.5.1 Error: no valid recipients"
            : null;
        if (_chunkError is null && _mail!.Chunks is null)
        {
            var writer = acceptor.NewMessage(clock.GetUtcNow());
            _mail.StartChunks(writer, new ChunkReader(writer, options.MessageSizeLimit, options.BareLineEndings == "normalize", options.TextLineLimit));
        }
        return Next.Chunk;
    }

    /// <summary>Answers a whole chunk: 250 for a middle one, the queue id (or a refusal) for the last.</summary>
    private async Task EndChunkAsync(CancellationToken ct)
    {
        _inChunk = false;
        if (_chunkError is not null)
        {
            Error(_chunkError);
            return;
        }
        var tooBig = _mail!.ChunkedSize > options.MessageSizeLimit;
        if (!_chunkLast)
        {
            if (tooBig) { Error("552 5.3.4 Error: message file too big"); ResetTransaction(); return; }
            Reply($"250 2.0.0 Ok: {_mail.ChunkedSize} octets");
            return;
        }
        var (content, reader) = _mail.TakeChunks();
        reader.Complete();
        await FinishDataAsync(content, reader.Size, tooBig, ct, Refusal(reader.BareLineEnding, reader.LineTooLong, content.Header));
        content.Dispose();
    }

    private async Task FinishDataAsync(SpoolWriter content, long size, bool tooBig, CancellationToken ct, string? refusal = null)
    {
        var mail = _mail!;
        ResetTransaction();
        if (tooBig) { Error("552 5.3.4 Error: message file too big"); return; }
        if (refusal is not null) { Error(refusal); return; }
        var envelope = Envelope(mail, content.Name, size);
        if (!PassesChecks(content, envelope)) return;
        await StoreAsync(envelope, content, ct);
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
        };
    }

    /// <summary>
    /// Header and body checks before the 250 (as Postfix's smtpd feeds cleanup before answering): a REJECT is a refusal
    /// the client hears, never a bounce to a sender who may be forged; DISCARD is acknowledged and dropped; running out
    /// of time is never a pass. False when the message has been answered here.
    /// </summary>
    private bool PassesChecks(SpoolWriter content, IncomingEnvelope envelope)
    {
        if (inspector is null || !(inspector.HeaderChecks || inspector.BodyChecks)) return true;
        Mta.Mail.Cleanup.CheckMatch? verdict;
        try
        {
            verdict = Inspect(content, envelope);
        }
        catch (Mta.Mail.Cleanup.ContentCheckTimeoutException e)
        {
            log.LogWarning("{QueueId}: deferred: from [{Client}]: {Error}", envelope.Id, client, e.Message);
            Reply(MessageAcceptor.ContentCheckTimeoutReply);
            return false;
        }
        if (verdict is null) return true;
        if (verdict.Action == Mta.Mail.Cleanup.CheckAction.Reject)
        {
            Error("550 5.7.1 " + (verdict.Text.Length > 0 ? verdict.Text : "Error: message content rejected"));
            return false;
        }
        log.LogInformation("{QueueId}: discarded: from=<{Sender}>, nrcpt={Count} ({Reason})", envelope.Id, envelope.Sender, envelope.Recipients.Count, verdict.Text);
        Reply($"250 2.0.0 Ok: queued as {envelope.Id}");
        return false;
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
        log.LogInformation("{QueueId}: client=[{Client}], helo=<{Helo}>, from=<{Sender}>, size={Size}, nrcpt={Count}, proto={Proto}, tls={Tls}, status=queued",
            envelope.Id, client, _helo, envelope.Sender, envelope.Size, envelope.Recipients.Count, envelope.Protocol, envelope.Tls ?? "none");
        Reply($"250 2.0.0 Ok: queued as {envelope.Id}");
    }

    /// <summary>The checks' REJECT or DISCARD for a message, from its first octets (the header and the body's start); HOLD and WARN are cleanup's.</summary>
    private Mta.Mail.Cleanup.CheckMatch? Inspect(SpoolWriter content, IncomingEnvelope envelope)
    {
        var head = content.Head;
        var who = $"from [{client}]; from=<{envelope.Sender}> to=<{envelope.Recipients[0]}> proto={envelope.Protocol} helo=<{envelope.Helo}>";
        MimeKit.HeaderList headers;
        long offset;
        try
        {
            var parser = new MimeKit.MimeParser(Mta.Mail.Cleanup.UntrustedMime.Options, new MemoryStream(head.ToArray(), writable: false), MimeKit.MimeFormat.Entity);
            headers = parser.ParseHeaders();
            offset = parser.Position;
        }
        catch (FormatException)
        {
            return null; // no header to speak of: cleanup delivers such a message as it came
        }
        Mta.Mail.Cleanup.CheckAction[] decisive = [Mta.Mail.Cleanup.CheckAction.Reject, Mta.Mail.Cleanup.CheckAction.Discard];
        var budget = new Mta.Mail.Cleanup.CheckBudget();
        var verdict = inspector!.InspectHeader(envelope.Id, headers, who, apply: false, logged: decisive, budget)
            ?? inspector.InspectBody(envelope.Id, head[(int)Math.Min(offset, head.Length)..], who, logged: decisive, budget);
        return verdict?.Action is Mta.Mail.Cleanup.CheckAction.Reject or Mta.Mail.Cleanup.CheckAction.Discard ? verdict : null;
    }

    /// <summary>The TLS handshake after <c>220 Ready to start TLS</c>; the session then starts over (RFC 3207 §4.2).</summary>
    private async Task<bool> StartTlsAsync(CancellationToken ct)
    {
        await FlushAsync(ct);
        var ssl = new SslStream(new DuplexPipeStream(_input, _output), leaveInnerStreamOpen: false);
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(options.TimeoutSeconds));
            try
            {
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = certificates.Current,
                    ClientCertificateRequired = false,
                }, timeout.Token);
            }
            catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException or OperationCanceledException)
            {
                log.LogInformation("SSL_accept error from [{Client}]: {Error}", client, e.Message);
                return false;
            }
        }
        _input = PipeReader.Create(ssl);
        _output = PipeWriter.Create(ssl);
        _tls = true;
        _tlsInfo = TlsDescription.Of(ssl.SslProtocol, ssl.NegotiatedCipherSuite);
        _helo = null;
        _pipelining = false;
        _esmtp = false;
        ResetTransaction();
        log.LogInformation("TLS connection established from [{Client}]: {Protocol} with cipher {Cipher}", client, ssl.SslProtocol, ssl.NegotiatedCipherSuite);
        return true;
    }

    private Next Auth(string arg)
    {
        Authenticate(arg);
        return _login is null ? Next.Command : Next.Login;
    }

    private void Authenticate(string arg)
    {
        if (_user is not null) { Error("503 5.5.1 Error: already authenticated"); return; }
        if (!AuthOffered) { Error("503 5.5.1 Error: authentication not enabled"); return; }
        if (!_tls) { Error("538 5.7.11 Encryption required for requested authentication mechanism"); return; }
        if (_helo is null || !_esmtp) { Error("503 5.5.1 Error: send EHLO first"); return; }
        if (_mail is not null) { Error("503 5.5.1 Error: MAIL transaction in progress"); return; }
        var parts = arg.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
        Answer(_sasl.Start(parts.Length > 0 ? parts[0] : "", parts.Length > 1 ? parts[1] : null));
    }

    /// <summary>Sends the exchange's challenge or refusal, or keeps the credentials for <see cref="LoginAsync"/>.</summary>
    private void Answer(SaslStep step)
    {
        if (step.Challenge is { } challenge) Reply("334 " + challenge);
        else if (step.Refusal is { } refusal) Error(refusal);
        else _login = step.Credentials;
    }

    /// <summary>Whether this listener takes logins: the submission ports when a users file is set, the MX port only when asked.</summary>
    private bool AuthOffered => users.Configured && (listener != Listener.Mx || options.MxAuth);

    /// <summary>Checks the pending login (PBKDF2 on the thread pool, the failure limits first) and answers.</summary>
    private async Task LoginAsync(CancellationToken ct)
    {
        var (name, password, mechanism) = _login!;
        _login = null;
        switch (await users.LoginAsync(client, name, password, ct))
        {
            case AuthOutcome.Success:
                _user = name;
                log.LogInformation("[{Client}]: sasl_method={Mechanism}, sasl_username={User}", client, mechanism, name);
                Reply("235 2.7.0 Authentication successful");
                break;
            case AuthOutcome.Failed:
                // The name is logged (Postfix does), made printable since it is the client's; the password never is.
                log.LogWarning("[{Client}]: SASL {Mechanism} authentication failed for {User}", client, mechanism, Sanitize(name));
                Error("535 5.7.8 Error: authentication failed");
                break;
            case AuthOutcome.UserThrottled:
                log.LogWarning("[{Client}]: SASL {Mechanism} for {User} not tried: too many failures for this name lately", client, mechanism, Sanitize(name));
                Error("454 4.7.0 Temporary authentication failure");
                break;
            default:
                log.LogWarning("[{Client}]: SASL {Mechanism} not tried: too many failures from this client lately; disconnected", client, mechanism);
                Reply("421 4.7.0 " + hostname + " Error: too many failed authentications, try again later");
                _quit = true;
                break;
        }
    }

    private static bool IsAscii(string s) => s.All(char.IsAscii);

    private void ResetTransaction()
    {
        _mail?.Dispose();
        _mail = null;
    }

    /// <summary>Postfix's smtpd_junk_command_limit: past it, every NOOP, VRFY, RSET or HELP counts as an error.</summary>
    private void Junk()
    {
        if (++_junk > options.JunkCommandLimit) _errors++;
    }

    /// <summary>A host name (letters, digits, hyphens, dots; at least one dot or a single label) or an address literal.</summary>
    internal static bool ValidHelo(string name)
    {
        if (name.Length > 255) return false;
        if (name.StartsWith('[') && name.EndsWith(']'))
        {
            var literal = name[1..^1];
            if (literal.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase)) literal = literal[5..];
            return IPAddress.TryParse(literal, out _);
        }
        var host = name.TrimEnd('.');
        if (IPAddress.TryParse(host, out _) && host.Count(c => c == '.') == 3) return false; // an address must be bracketed
        return host.Length > 0 && host.Split('.').All(label => label.Length is > 0 and <= 63
            && label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_') && label[0] != '-' && label[^1] != '-');
    }

    private void Error(string reply)
    {
        _errors++;
        Reply(reply);
    }

    private void Reply(params string[] lines)
    {
        if (metrics is not null && lines.Length > 0 && lines[0].Length > 0 && lines[0][0] is '4' or '5')
            metrics.Rejected(lines[0], _verb);
        foreach (var l in lines)
        {
            var bytes = Encoding.UTF8.GetBytes(l + "\r\n");
            _output.Write(bytes);
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

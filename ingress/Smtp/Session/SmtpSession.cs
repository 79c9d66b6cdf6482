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
public sealed partial class SmtpSession(PipeReader input, PipeWriter output, IPAddress client, Listener listener, SmtpSessionServices services,
    string? implicitTls = null, (IPEndPoint? Remote, IPEndPoint? Local) endpoints = default)
{
    // The shared services under the short names the session's code has always used.
    private IngressOptions options => services.Options;
    private string hostname => services.Hostname;
    private string localDomain => services.LocalDomain;
    private RelayPolicy relay => services.Relay;
    private LocalRecipients localRecipients => services.LocalRecipients;
    private IMessageAcceptor acceptor => services.Acceptor;
    private TlsCertificates certificates => services.Certificates;
    private SaslUsers users => services.Users;
    private TimeProvider clock => services.Clock;
    private ILogger log => services.Log;
    private Metrics.IngressMetrics? metrics => services.Metrics;
    private Verification.AddressVerifier? verifier => services.Verifier;

    /// <summary>postscreen's enforce verdict: the reply every RCPT gets (its dummy SMTP engine's), or null.</summary>
    public string? ScreenRefusal { get; init; }

    private string _verb = "CONNECT";

    private PipeReader _input = input;
    private string? _tlsInfo = implicitTls;
    private PipeWriter _output = output;
    private bool _tls = listener == Listener.Submissions; // Kestrel already did the handshake
    private string? _user;
    private readonly SaslExchange _sasl = new();

    /// <summary>What a command leads to: another command, message octets, a TLS handshake, a login or probe to finish.</summary>
    private enum Next { Command, Data, StartTls, Chunk, Login, Verify }

    /// <summary>What the session reads next (Stalwart's named session state), from the one field that says so each.</summary>
    private enum Expecting { Command, SaslResponse, DataLines, ChunkOctets }

    private Expecting State => _data is not null ? Expecting.DataLines
        : _inChunk ? Expecting.ChunkOctets
        : _sasl.InProgress ? Expecting.SaslResponse
        : Expecting.Command;

    /// <summary>A name and password waiting to be checked, off the session's I/O path.</summary>
    private SaslCredentials? _login;

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
            Reply(await GreetingAsync(stopping));
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
            if (_milters is not null) await _milters.DisposeAsync();
            _content?.Dispose();
            log.LogInformation("disconnect from [{Client}]", client);
            metrics?.SessionEnded();
        }
    }

    /// <summary>
    /// What the client sent next, within the read deadline; null, with the <c>421</c> written, when the session ends
    /// (a timeout, or the pod shutting down while the client is between commands — a message in DATA is still read).
    /// </summary>
    private async Task<ReadResult?> ReadAsync(CancellationToken stopping, CancellationToken draining)
    {
        var midMessage = State is Expecting.DataLines or Expecting.ChunkOctets;
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
            log.LogInformation("timeout after {State} from [{Client}]", State == Expecting.DataLines ? "DATA" : "command", client);
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
            if (State == Expecting.DataLines)
            {
                if (!_data!.Process(ref buffer)) break;
                await EndDataAsync(stopping);
                continue;
            }
            if (State == Expecting.ChunkOctets)
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

    /// <summary>What a command leads to: a message, a chunk, a login or probe to finish, or TLS (true).</summary>
    private async Task<bool> AfterCommandAsync(Next next, ReadOnlySequence<byte> pending, CancellationToken stopping)
    {
        await RunPendingStepAsync(stopping);
        switch (next)
        {
            case Next.Data:
                if (await MilterDataAsync(stopping) is { } refused)
                {
                    Error(refused);
                    if (Unsynchronized(pending, "DATA")) _quit = true;
                    return false;
                }
                Reply("354 End data with <CR><LF>.<CR><LF>");
                _content = acceptor.NewMessage(clock.GetUtcNow());
                _data = new DataReader(_content, options.MessageSizeLimit, options.BareLineEndings == "normalize", options.TextLineLimit);
                if (Unsynchronized(pending, "DATA")) _quit = true;
                return false;
            case Next.Chunk:
                if (_chunkFirst && await MilterDataAsync(stopping) is { } refusedChunks)
                {
                    _chunkError = refusedChunks;
                    ResetTransaction();
                }
                _chunkFirst = false;
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

    private static string Verb(string line)
    {
        var space = line.IndexOf(' ');
        return (space < 0 ? line : line[..space]).ToUpperInvariant();
    }

    /// <summary>Handles one command line; says whether DATA or a TLS handshake comes next.</summary>
    private Next Handle(string line)
    {
        if (State == Expecting.SaslResponse)
        {
            _verb = "AUTH"; // a response to AUTH is credentials: never the name of anything in a log
            Answer(_sasl.Continue(line));
            return _login is null ? Next.Command : Next.Login;
        }
        var verb = Verb(line);
        _verb = verb.Length <= 10 && verb.All(char.IsAsciiLetter) ? verb : "UNKNOWN"; // bounded label values
        var arg = line.Length > verb.Length ? line[(verb.Length + 1)..].Trim() : "";
        if (!Commands.TryGetValue(verb, out var command)) return UnknownCommand(line);
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

    private void ResetTransaction()
    {
        if (_mail is not null && _milters is not null) _milterAbortOwed = true;
        _mail?.Dispose();
        _mail = null;
    }

    /// <summary>Postfix's smtpd_junk_command_limit: past it, every NOOP, VRFY, RSET or HELP counts as an error.</summary>
    private void Junk()
    {
        if (++_junk > options.JunkCommandLimit) _errors++;
    }

}

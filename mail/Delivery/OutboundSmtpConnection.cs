using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using MailKit.Net.Smtp;
using MimeKit.IO;
using Mta.Mail.Contracts;

namespace Mta.Mail.Delivery;

/// <summary>One reply from the server: its code and its text, all lines joined as Postfix logs them (<c>250 2.0.0 Ok</c>).</summary>
/// <param name="Code">The three-digit code; 0 when the reply could not be read.</param>
/// <param name="Text">The whole reply, code included.</param>
public readonly record struct SmtpReply(int Code, string Text)
{
    /// <summary>2xx.</summary>
    public bool Positive => Code is >= 200 and < 300;

    /// <summary>The outcome a recipient gets from this reply.</summary>
    public RecipientStatus Status => Positive ? RecipientStatus.Delivered : Code >= 500 ? RecipientStatus.Bounced : RecipientStatus.Deferred;
}

/// <summary>
/// The outbound side: a connection of ours to a next hop (the inbound side, clients talking to us, is the ingress's
/// <c>SmtpConnectionHandler</c>). A small SMTP/LMTP client that sends stored message bytes exactly and the whole RFC 3461 envelope
/// (why not MailKit's client: docs/adr/0003). Dot-stuffing is MailKit's <see cref="SmtpDataFilter"/>; TLS is .NET's
/// <see cref="SslStream"/>. One connection, one transaction at a time; reusable after a transaction (Postfix's
/// connection cache).
/// </summary>
public sealed partial class OutboundSmtpConnection : IAsyncDisposable
{
    private const int MaxReplyLine = 4096;
    private readonly Socket _socket;
    private Stream _stream;
    private readonly byte[] _buffer = new byte[8192];
    private int _start, _end;
    private readonly bool _lmtp;
    private readonly string _heloName;
    private readonly TimeSpan _timeout;

    private OutboundSmtpConnection(Socket socket, bool lmtp, string heloName, TimeSpan timeout, string relay, DateTimeOffset now)
    {
        _socket = socket;
        _stream = Stream.Null; // until connected
        _lmtp = lmtp;
        _heloName = heloName;
        _timeout = timeout;
        Relay = relay;
        ConnectedAt = now;
    }

    /// <summary>The peer as logged: <c>host[address]:port</c>.</summary>
    public string Relay { get; }

    /// <summary>When the connection was made.</summary>
    public DateTimeOffset ConnectedAt { get; }

    /// <summary>EHLO/LHLO keywords the server offered, upper case, with their arguments (<c>SIZE</c> → <c>10240000</c>).</summary>
    public IReadOnlyDictionary<string, string> Extensions { get; private set; } = new Dictionary<string, string>();

    /// <summary>Transactions sent over this connection so far.</summary>
    public int Uses { get; private set; }

    /// <summary>True once the conversation failed: the connection must not be reused.</summary>
    public bool Broken { get; private set; }

    /// <summary>TLS in use, as <c>TLSv1.3 with cipher TLS_AES_256_GCM_SHA384</c>; null in plain text.</summary>
    public string? Tls { get; private set; }

    /// <summary>Whether the server offered an extension.</summary>
    public bool Offers(string keyword) => Extensions.ContainsKey(keyword);

    /// <summary>
    /// Connects to <paramref name="host"/>, reads the greeting and says EHLO (LHLO for LMTP; HELO when EHLO is refused).
    /// Throws <see cref="SmtpConnectException"/> with the reason when the server cannot be used.
    /// </summary>
    /// <param name="host">The host: its name (for logs) and address.</param>
    /// <param name="port">The TCP port.</param>
    /// <param name="lmtp">LMTP (LHLO, a reply per recipient) rather than SMTP.</param>
    /// <param name="heloName">Our name in EHLO.</param>
    /// <param name="timeout">The limit for the connect and for each reply.</param>
    /// <param name="now">When the connection is made (for the cache's age limit).</param>
    /// <param name="ct">Cancellation.</param>
    /// <param name="implicitTls">For implicit TLS (port 465, RFC 8314): the name to check the certificate against and
    /// the check; the handshake comes before the greeting. Null: plain text (STARTTLS may follow).</param>
    public static async Task<OutboundSmtpConnection> OpenAsync(MailHost host, int port, bool lmtp, string heloName, TimeSpan timeout, DateTimeOffset now,
        CancellationToken ct, (string HostName, RemoteCertificateValidationCallback Validate)? implicitTls = null)
    {
        var relay = $"{host.Name}[{host.Address}]:{port}";
        var socket = new Socket(host.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var connection = new OutboundSmtpConnection(socket, lmtp, heloName, timeout, relay, now);
        try
        {
            using (var limit = Limit(ct, timeout))
                await socket.ConnectAsync(host.Address, port, limit.Token);
            connection._stream = new NetworkStream(socket, ownsSocket: false);
            if (implicitTls is { } tls) await connection.HandshakeAsync(tls.HostName, tls.Validate, ct);
            var greeting = await connection.ReadReplyAsync(ct);
            if (greeting.Code != 220) throw new SmtpConnectException(greeting.Text, greeting.Code);
            await connection.HelloAsync(ct);
            return connection;
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            await connection.DisposeAsync();
            throw new SmtpConnectException(e is OperationCanceledException ? "conversation timed out"
                : e is AuthenticationException ? "TLS handshake failed: " + e.Message : e.Message, 0);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task HelloAsync(CancellationToken ct)
    {
        var hello = await CommandAsync((_lmtp ? "LHLO " : "EHLO ") + _heloName, ct);
        if (!hello.Positive && !_lmtp && hello.Code is >= 500 and < 600)
        {
            hello = await CommandAsync("HELO " + _heloName, ct); // an old server without ESMTP
            Extensions = new Dictionary<string, string>();
            if (!hello.Positive) throw new SmtpConnectException(hello.Text, hello.Code);
            return;
        }
        if (!hello.Positive) throw new SmtpConnectException(hello.Text, hello.Code);
        var extensions = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in _lastLines.Skip(1))
        {
            var space = line.IndexOf(' ');
            extensions[space < 0 ? line : line[..space]] = space < 0 ? "" : line[(space + 1)..];
        }
        Extensions = extensions;
    }

    /// <summary>
    /// STARTTLS, the handshake with <paramref name="hostName"/> as SNI and certificate name, and EHLO again (RFC 3207).
    /// Throws <see cref="AuthenticationException"/> when the handshake or the certificate check fails.
    /// </summary>
    public async Task StartTlsAsync(string hostName, RemoteCertificateValidationCallback validate, CancellationToken ct)
    {
        var reply = await CommandAsync("STARTTLS", ct);
        if (reply.Code != 220) throw new SmtpConnectException(reply.Text, reply.Code);
        await HandshakeAsync(hostName, validate, ct);
        await HelloAsync(ct);
    }

    /// <summary>The TLS handshake on the connection as it stands (after STARTTLS, or first thing for implicit TLS).</summary>
    private async Task HandshakeAsync(string hostName, RemoteCertificateValidationCallback validate, CancellationToken ct)
    {
        var tls = new SslStream(_stream, leaveInnerStreamOpen: false, validate);
        using (var limit = Limit(ct, _timeout))
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = hostName,
                EnabledSslProtocols = SslProtocols.None, // the system's choice: TLS 1.2 and 1.3
                CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
            }, limit.Token);
        }
        _stream = tls;
        _start = _end = 0; // RFC 3207 §4.2: nothing read before the handshake counts
        Tls = $"{Protocol(tls.SslProtocol)} with cipher {tls.NegotiatedCipherSuite}";
    }

    private static string Protocol(SslProtocols p) => p switch
    {
        SslProtocols.Tls13 => "TLSv1.3",
        SslProtocols.Tls12 => "TLSv1.2",
        _ => p.ToString(),
    };

    /// <summary>
    /// One mail transaction: MAIL, every RCPT (pipelined when offered), DATA and the message, with each
    /// recipient's outcome. A failure mid-way defers every recipient without a final answer, and marks
    /// the connection <see cref="Broken"/>.
    /// </summary>
    public async Task<IReadOnlyList<RecipientResult>> SendAsync(DeliveryJob job, ReadOnlyMemory<byte> message, bool smtpUtf8, CancellationToken ct)
    {
        Uses++;
        var results = new Dictionary<string, RecipientResult>(StringComparer.Ordinal);
        try
        {
            var (mail, accepted) = await EnvelopeAsync(job, message, smtpUtf8, results, ct);
            if (!mail.Positive)
                foreach (var r in job.Recipients) results[r] = Result(job, r, mail);
            if (!mail.Positive || accepted.Count == 0)
            {
                await ResetAsync(ct);
                return job.Recipients.Select(r => results[r]).ToList();
            }
            var data = await CommandAsync("DATA", ct);
            if (data.Code != 354)
            {
                foreach (var r in accepted) results[r] = Result(job, r, data.Positive ? data with { Code = 451 } : data);
                await ResetAsync(ct);
                return job.Recipients.Select(r => results[r]).ToList();
            }
            await WriteMessageAsync(message, ct);
            // SMTP: one reply for the message. LMTP (RFC 2033 §4.2): one per accepted recipient, in RCPT order.
            if (_lmtp)
            {
                foreach (var r in accepted) results[r] = Result(job, r, await ReadReplyAsync(ct));
            }
            else
            {
                var done = await ReadReplyAsync(ct);
                foreach (var r in accepted) results[r] = Result(job, r, done);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or SmtpConnectException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // A drop before a recipient's final answer is a deferral for that recipient, never a loss.
            Broken = true;
            var why = e is OperationCanceledException ? "conversation timed out" : e.Message;
            foreach (var r in job.Recipients.Where(r => !results.ContainsKey(r)))
                results[r] = new RecipientResult(r, RecipientStatus.Deferred, $"4.4.2 lost connection with {Relay}: {why}", Relay);
        }
        return job.Recipients.Select(r => results[r]).ToList();
    }

    /// <summary>A recipient's result from a reply; a success over SMTP is a relay, which reports on if it took NOTIFY.</summary>
    private RecipientResult Result(DeliveryJob job, string recipient, SmtpReply reply)
        => new(recipient, reply.Status, reply.Text, Relay, Relayed: !_lmtp, NotifyPassedOn: Offers("DSN") && !_lmtp);

    /// <summary>
    /// MAIL and every RCPT: MAIL's reply and the recipients accepted; refused recipients get their result in
    /// <paramref name="results"/> (when MAIL was accepted).
    /// </summary>
    private async Task<(SmtpReply Mail, List<string> Accepted)> EnvelopeAsync(DeliveryJob job, ReadOnlyMemory<byte> message, bool smtpUtf8,
        Dictionary<string, RecipientResult> results, CancellationToken ct)
    {
        var commands = new List<string> { MailCommand(job, message, smtpUtf8) };
        commands.AddRange(job.Recipients.Select(r => RcptCommand(job, r)));
        var accepted = new List<string>();
        if (Offers("PIPELINING"))
        {
            // RFC 2920: MAIL and the RCPTs in one write; DATA waits, so nothing is sent for a refused envelope.
            await WriteAsync(string.Concat(commands.Select(c => c + "\r\n")), ct);
            var mail = await ReadReplyAsync(ct);
            foreach (var r in job.Recipients)
            {
                var rcpt = await ReadReplyAsync(ct);
                if (mail.Positive && rcpt.Positive) accepted.Add(r);
                else if (mail.Positive) results[r] = Result(job, r, rcpt);
            }
            return (mail, accepted);
        }
        var unpipelined = await CommandAsync(commands[0], ct);
        if (unpipelined.Positive)
            foreach (var (r, command) in job.Recipients.Zip(commands.Skip(1)))
            {
                var rcpt = await CommandAsync(command, ct);
                if (rcpt.Positive) accepted.Add(r);
                else results[r] = Result(job, r, rcpt);
            }
        return (unpipelined, accepted);
    }

    /// <summary>The message after DATA's 354, and the final dot.</summary>
    private async Task WriteMessageAsync(ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        // Only CRLF goes out, whatever the queue holds (LineEndings); a message that needs the fix is copied, others are not.
        var wire = LineEndings.OnlyCrlf(message.Span) ? message : LineEndings.ToCrlf(message.Span);
        using var limit = Limit(ct, _timeout + TimeSpan.FromSeconds(wire.Length / 1024.0)); // ~1 KiB/s at least
        await WriteDotStuffedAsync(wire, limit.Token);
        var end = wire.Length > 0 && wire.Span[^1] == (byte)'\n' ? ".\r\n"u8.ToArray() : "\r\n.\r\n"u8.ToArray();
        await _stream.WriteAsync(end, limit.Token);
        await _stream.FlushAsync(limit.Token);
    }

    // Pieces of at most 32 KiB: the filter's output buffer stays below the large-object heap's 85,000 bytes.
    private const int DataPiece = 32 * 1024;

    /// <summary>
    /// The message as DATA, dot-stuffed by MailKit's <see cref="SmtpDataFilter"/> fed in pieces straight from where the
    /// message lies. A <see cref="FilteredStream"/> over the whole message would copy all of it into one filter buffer,
    /// a large-object allocation for every message over 85 KB.
    /// </summary>
    private async Task WriteDotStuffedAsync(ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        var input = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(message, out var segment) ? segment : new ArraySegment<byte>(message.ToArray());
        var filter = new SmtpDataFilter();
        for (var at = 0; at < input.Count; at += DataPiece)
        {
            var output = filter.Filter(input.Array!, input.Offset + at, Math.Min(DataPiece, input.Count - at), out var index, out var length);
            await _stream.WriteAsync(output.AsMemory(index, length), ct);
        }
    }

    private string MailCommand(DeliveryJob job, ReadOnlyMemory<byte> message, bool smtpUtf8)
    {
        var command = new StringBuilder("MAIL FROM:<").Append(job.Sender).Append('>');
        if (Offers("SIZE")) command.Append(" SIZE=").Append(message.Length);
        if (Offers("8BITMIME") && message.Span.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0) command.Append(" BODY=8BITMIME");
        if (smtpUtf8) command.Append(" SMTPUTF8");
        if (Offers("DSN") && job.Dsn is { } dsn)
        {
            if (dsn.Ret is { } ret) command.Append(" RET=").Append(ret);
            if (dsn.EnvelopeId is { } envid) command.Append(" ENVID=").Append(Xtext.Encode(envid));
        }
        return command.ToString();
    }

    private string RcptCommand(DeliveryJob job, string recipient)
    {
        var command = new StringBuilder("RCPT TO:<").Append(recipient).Append('>');
        if (Offers("DSN") && job.Dsn?.Recipients.GetValueOrDefault(recipient) is { } dsn)
        {
            if (dsn.Notify is { } notify) command.Append(" NOTIFY=").Append(notify);
            if (dsn.OriginalRecipient is { } orcpt && orcpt.IndexOf(';') is var semi and > 0)
                command.Append(" ORCPT=").Append(orcpt[..semi]).Append(';').Append(Xtext.Encode(orcpt[(semi + 1)..]));
        }
        return command.ToString();
    }

    /// <summary>
    /// Asks whether the server would take <paramref name="recipient"/> (an address probe, Postfix's verify): MAIL, RCPT,
    /// then RSET; no message is sent. The reply is RCPT's, or MAIL's when MAIL is refused.
    /// </summary>
    public async Task<SmtpReply> ProbeAsync(string sender, string recipient, CancellationToken ct)
    {
        var utf8 = !Ascii.IsValid(recipient);
        if (utf8 && !Offers("SMTPUTF8")) return new SmtpReply(450, "450 4.6.7 the server takes no SMTPUTF8 address");
        var mail = await CommandAsync($"MAIL FROM:<{sender}>" + (utf8 ? " SMTPUTF8" : ""), ct);
        if (!mail.Positive) return mail;
        var rcpt = await CommandAsync($"RCPT TO:<{recipient}>", ct);
        await ResetAsync(ct);
        return rcpt;
    }

    /// <summary>Checks that an idle connection still answers (NOOP) before it is used again.</summary>
    public async Task<bool> StillUsableAsync(CancellationToken ct)
    {
        if (Broken) return false;
        try
        {
            return (await CommandAsync("NOOP", ct)).Positive;
        }
        catch (Exception e) when (e is IOException or SocketException or SmtpConnectException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            Broken = true;
            return false;
        }
    }

    private async Task ResetAsync(CancellationToken ct)
    {
        if (!(await CommandAsync("RSET", ct)).Positive) Broken = true;
    }

    /// <summary>Says QUIT (briefly) and closes.</summary>
    public async Task QuitAsync()
    {
        if (!Broken)
        {
            try
            {
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await CommandAsync("QUIT", limit.Token);
            }
            catch (Exception) { /* closing anyway */ }
        }
        await DisposeAsync();
    }

    private async Task<SmtpReply> CommandAsync(string command, CancellationToken ct)
    {
        await WriteAsync(command + "\r\n", ct);
        return await ReadReplyAsync(ct);
    }

    private async Task WriteAsync(string text, CancellationToken ct)
    {
        using var limit = Limit(ct, _timeout);
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(text), limit.Token);
        await _stream.FlushAsync(limit.Token);
    }

    private List<string> _lastLines = [];

    /// <summary>Reads one reply, all its lines (RFC 5321 §4.2.1); throws <see cref="SmtpConnectException"/> on garbage.</summary>
    private async Task<SmtpReply> ReadReplyAsync(CancellationToken ct)
    {
        using var limit = Limit(ct, _timeout);
        var lines = new List<string>();
        while (true)
        {
            var line = await ReadLineAsync(limit.Token);
            if (line.Length < 3 || !int.TryParse(line.AsSpan(0, 3), out var code) || line.Length > 3 && line[3] is not (' ' or '-'))
                throw new SmtpConnectException($"malformed reply: {line[..Math.Min(line.Length, 80)]}", 0);
            lines.Add(Printable(line.Length > 4 ? line[4..] : ""));
            if (line.Length == 3 || line[3] == ' ')
            {
                _lastLines = lines;
                return new SmtpReply(code, $"{code} {string.Join(" ", lines)}".TrimEnd());
            }
            if (lines.Count > 100) throw new SmtpConnectException("reply too long", 0);
        }
    }

    /// <summary>
    /// A reply's text goes into logs, DSNs, mtactl's output and a client's reply (address probes): control characters
    /// (terminal escapes, CR) become <c>?</c>, as Postfix's smtp client prints replies.
    /// </summary>
    internal static string Printable(string text)
        => text.Any(char.IsControl) ? string.Create(text.Length, text, (span, t) =>
        {
            for (var i = 0; i < t.Length; i++) span[i] = char.IsControl(t[i]) ? '?' : t[i];
        }) : text;

    private async Task<string> ReadLineAsync(CancellationToken ct)
    {
        while (true)
        {
            var lf = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (lf >= 0)
            {
                var length = lf - _start;
                if (length > 0 && _buffer[lf - 1] == '\r') length--;
                var line = Encoding.UTF8.GetString(_buffer, _start, length);
                _start = lf + 1;
                return line;
            }
            if (_end - _start > MaxReplyLine) throw new SmtpConnectException("reply line too long", 0);
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            var read = await _stream.ReadAsync(_buffer.AsMemory(_end), ct);
            if (read == 0) throw new IOException("connection closed by the server");
            _end += read;
        }
    }

    private static CancellationTokenSource Limit(CancellationToken ct, TimeSpan timeout)
    {
        var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        return limit;
    }

    /// <summary>The traffic-shaping site this connection counts against, and the slot it holds there (let go when it closes).</summary>
    internal (Shaping.ShapingSite Site, Shaping.SlotLease Slot)? Shaping { get; set; }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        Broken = true;
        try { await _stream.DisposeAsync(); } catch (Exception) { /* closing */ }
        _socket.Dispose();
        // Closed first, then the slot goes: the destination never sees one connection more than the limit.
        if (Shaping is { } shaping) await shaping.Slot.DisposeAsync();
    }
}

/// <summary>The server could not be used: refused greeting, EHLO or STARTTLS, a broken reply, or a lost connection.</summary>
public sealed class SmtpConnectException(string message, int code) : Exception(message)
{
    /// <summary>The reply code, or 0 when there was no reply.</summary>
    public int Code { get; } = code;
}

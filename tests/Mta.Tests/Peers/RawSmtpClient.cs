using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Mta.Tests.Peers;

/// <summary>
/// A deliberately dumb SMTP client for protocol tests: writes exactly the bytes it is given
/// (pipelined, malformed, smuggled) and reads replies one at a time.
/// </summary>
public sealed class RawSmtpClient : IAsyncDisposable
{
    private readonly IDisposable? _connection;
    private Stream _stream;
    private readonly StringBuilder _pending = new();
    private readonly byte[] _buffer = new byte[8192];

    /// <summary>Connects and returns the greeting.</summary>
    public static async Task<(RawSmtpClient Client, string Greeting)> ConnectAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        var c = new RawSmtpClient(tcp.GetStream(), tcp);
        return (c, await c.ReplyAsync());
    }

    /// <summary>
    /// Connects from the loopback address <paramref name="from"/> (127.0.0.0/8 is all ours), writes
    /// <paramref name="preamble"/> before anything is read (a PROXY header, say), and returns the first reply.
    /// </summary>
    public static async Task<(RawSmtpClient Client, string Greeting)> ConnectAsync(System.Net.IPAddress host, int port, System.Net.IPAddress from,
        string? preamble = null)
    {
        var socket = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(from, 0));
        await socket.ConnectAsync(host, port);
        var c = new RawSmtpClient(new NetworkStream(socket, ownsSocket: true), socket);
        if (preamble is not null) await c.WriteAsync(preamble);
        return (c, await c.ReplyAsync());
    }

    /// <summary>Talks over <paramref name="stream"/> (an in-memory pipe pair, say) and returns the greeting.</summary>
    public static async Task<(RawSmtpClient Client, string Greeting)> ConnectAsync(Stream stream)
    {
        var c = new RawSmtpClient(stream, stream);
        return (c, await c.ReplyAsync());
    }

    /// <summary>Connects with implicit TLS (RFC 8314), any certificate accepted; returns the greeting and the certificate shown.</summary>
    public static async Task<(RawSmtpClient Client, string Greeting, X509Certificate2 Certificate)> ConnectTlsAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        var c = new RawSmtpClient(tcp.GetStream(), tcp);
        var certificate = await c.HandshakeAsync();
        return (c, await c.ReplyAsync(), certificate);
    }

    /// <summary>
    /// Takes the connection into TLS (after the 220 to STARTTLS), any certificate accepted; returns the one shown.
    /// Whatever was read ahead in plain text is dropped, as the server drops what came after STARTTLS.
    /// </summary>
    public async Task<X509Certificate2> HandshakeAsync()
    {
        var tls = new SslStream(_stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync("mta.test");
        _stream = tls;
        _pending.Clear();
        return new X509Certificate2(tls.RemoteCertificate!);
    }

    /// <summary>A session taken into TLS by EHLO and STARTTLS on <paramref name="port"/>.</summary>
    public static async Task<RawSmtpClient> StartTlsAsync(int port)
    {
        var (c, _) = await ConnectAsync(port);
        await c.CommandAsync("EHLO client.test");
        await c.CommandAsync("STARTTLS");
        await c.HandshakeAsync();
        return c;
    }

    private RawSmtpClient(Stream stream, IDisposable connection) => (_stream, _connection) = (stream, connection);

    /// <summary>Writes raw text (use \r\n yourself).</summary>
    public Task WriteAsync(string text) => _stream.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask();

    /// <summary>Writes raw octets.</summary>
    public Task WriteAsync(ReadOnlyMemory<byte> octets) => _stream.WriteAsync(octets).AsTask();

    /// <summary>Writes one command line and reads its reply.</summary>
    public async Task<string> CommandAsync(string line)
    {
        await WriteAsync(line + "\r\n");
        return await ReplyAsync();
    }

    /// <summary>Reads one whole reply (all its continuation lines); empty when the server closed.</summary>
    public async Task<string> ReplyAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var reply = new StringBuilder();
        while (true)
        {
            var text = _pending.ToString();
            var lf = text.IndexOf('\n');
            if (lf < 0)
            {
                var n = await _stream.ReadAsync(_buffer, timeout.Token);
                if (n == 0) return reply.ToString();
                _pending.Append(Encoding.UTF8.GetString(_buffer, 0, n));
                continue;
            }
            var line = text[..(lf + 1)];
            _pending.Remove(0, lf + 1);
            reply.Append(line);
            if (line.Length < 4 || line[3] != '-') return reply.ToString();
        }
    }

    /// <summary>EHLO, MAIL, RCPT and DATA, each waiting for its reply; returns the reply to DATA (354 when all went well).</summary>
    public async Task<string> StartDataAsync(string from = "a@sender.test", string to = "user@localhost")
    {
        await CommandAsync("EHLO client.test");
        await CommandAsync($"MAIL FROM:<{from}>");
        await CommandAsync($"RCPT TO:<{to}>");
        return await CommandAsync("DATA");
    }

    /// <summary>True when the server has closed the connection (nothing more comes).</summary>
    public async Task<bool> ClosedAsync()
    {
        try { return (await ReplyAsync()).Length == 0; }
        catch (IOException) { return true; }
    }

    /// <summary>Closes the connection.</summary>
    public ValueTask DisposeAsync()
    {
        _stream.Dispose();
        _connection?.Dispose();
        return ValueTask.CompletedTask;
    }
}

using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mta.Tests.Peers;

/// <summary>
/// A receiving SMTP server on loopback that measures what traffic shaping promises: connections open at once (and the
/// peak), transactions per connection, recipients per transaction and when each message arrived. It can be slow per
/// message, and it can answer <c>421</c> to connections above a threshold ("under load"), as large providers do.
/// smtp-sink counts none of this, so the tests use this one. It reads lines as .NET's <see cref="StreamReader"/> does,
/// ending them at a bare CR or LF too: a lenient receiver, the kind SMTP smuggling aims at.
/// </summary>
public sealed class CountingSmtpServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _open;
    private int _peak;
    private int _refused;

    /// <summary>One message as received.</summary>
    /// <param name="At">When its MAIL command arrived (the start of the transaction, which is what a rate paces).</param>
    /// <param name="Connection">Which connection carried it (numbered from 1).</param>
    /// <param name="Recipients">Its RCPT TO addresses.</param>
    /// <param name="Subject">Its Subject header.</param>
    public sealed record Received(DateTimeOffset At, int Connection, IReadOnlyList<string> Recipients, string Subject);

    private readonly ConcurrentQueue<Received> _messages = new();
    private readonly ConcurrentQueue<string> _commands = new();

    /// <summary>Every command line it read outside DATA, in order (across connections).</summary>
    public IReadOnlyList<string> Commands => _commands.ToArray();
    private int _connections;

    /// <summary>The port it listens on (127.0.0.1).</summary>
    public int Port { get; }

    /// <summary>How long each message takes to be accepted after its final dot.</summary>
    public TimeSpan DelayPerMessage { get; set; }

    /// <summary>When set, a connection that would make more than this many open at once gets <c>421</c> and is closed.</summary>
    public int? ThrottleAbove { get; set; }

    /// <summary>Most connections that were open at once.</summary>
    public int PeakConnections => Volatile.Read(ref _peak);

    /// <summary>Connections refused with 421.</summary>
    public int Refused => Volatile.Read(ref _refused);

    /// <summary>Every message received so far.</summary>
    public IReadOnlyList<Received> Messages => _messages.ToArray();

    private CountingSmtpServer(TcpListener listener)
    {
        _listener = listener;
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    /// <summary>Starts listening on a free loopback port.</summary>
    public static CountingSmtpServer Start()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(512);
        return new CountingSmtpServer(listener);
    }

    /// <summary>Forgets the peak (for a second phase of a test).</summary>
    public void ResetPeak() => Volatile.Write(ref _peak, Volatile.Read(ref _open));

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        var open = Interlocked.Increment(ref _open);
        var number = Interlocked.Increment(ref _connections);
        var counted = true;
        try
        {
            using var _ = client;
            var stream = client.GetStream();
            var reader = new StreamReader(stream, Encoding.Latin1);
            var writer = new StreamWriter(stream, Encoding.Latin1) { NewLine = "\r\n", AutoFlush = true };
            if (ThrottleAbove is int limit && open > limit)
            {
                Interlocked.Increment(ref _refused);
                await writer.WriteLineAsync("421 4.7.0 counting.test Too many connections from your address, slow down");
                return;
            }
            UpdatePeak(open);
            await writer.WriteLineAsync("220 counting.test ESMTP");
            var recipients = new List<string>();
            var started = DateTimeOffset.UtcNow;
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                _commands.Enqueue(line);
                var verb = line.Length >= 4 ? line[..4].ToUpperInvariant() : line.ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO":
                        await writer.WriteAsync("250-counting.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
                        break;
                    case "MAIL":
                        recipients.Clear();
                        started = DateTimeOffset.UtcNow;
                        await writer.WriteLineAsync("250 2.1.0 Ok");
                        break;
                    case "RCPT":
                        recipients.Add(line[(line.IndexOf('<') + 1)..line.IndexOf('>')]);
                        await writer.WriteLineAsync("250 2.1.5 Ok");
                        break;
                    case "DATA":
                        await writer.WriteLineAsync("354 End data with <CR><LF>.<CR><LF>");
                        var subject = "";
                        while (await reader.ReadLineAsync(_stop.Token) is { } data && data != ".")
                            if (subject.Length == 0 && data.StartsWith("Subject: ", StringComparison.OrdinalIgnoreCase)) subject = data[9..];
                        if (DelayPerMessage > TimeSpan.Zero) await Task.Delay(DelayPerMessage, _stop.Token);
                        _messages.Enqueue(new Received(started, number, recipients.ToList(), subject));
                        await writer.WriteLineAsync("250 2.0.0 Ok: queued");
                        break;
                    case "QUIT":
                        // Counted as closed before the client hears 221: the client lets its slot go only after that.
                        Interlocked.Decrement(ref _open);
                        counted = false;
                        await writer.WriteLineAsync("221 2.0.0 Bye");
                        return;
                    default: // RSET, NOOP
                        await writer.WriteLineAsync("250 2.0.0 Ok");
                        break;
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // The client went away, or the server is stopping.
        }
        finally
        {
            if (counted) Interlocked.Decrement(ref _open);
        }
    }

    private void UpdatePeak(int open)
    {
        int peak;
        while (open > (peak = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, open, peak) != peak) { }
    }

    /// <summary>Stops listening and drops every connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _accepting; } catch (Exception) { /* stopping */ }
        _stop.Dispose();
    }
}

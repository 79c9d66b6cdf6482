using System.IO.Pipelines;
using System.Net.Sockets;

namespace Mta.Ingress.Milter;

/// <summary>
/// The socket to one milter: packets out, replies in, each reply within its timeout (restarted by SMFIR_PROGRESS).
/// A timeout, a closed socket or a malformed packet is a <see cref="MilterProtocolException"/>; the caller then stops
/// talking to that milter for the session, as Postfix's milter8.c closes the stream after any error.
/// </summary>
public sealed class MilterConnection : IAsyncDisposable
{
    /// <summary>The most data a reply may carry: a body replacement part, or a long SMTP reply.</summary>
    public const int MaxReplyData = 1024 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;

    private MilterConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream);
    }

    /// <summary>Connects to <paramref name="milter"/> within its connect timeout.</summary>
    public static async Task<MilterConnection> ConnectAsync(MilterEndpoint milter, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(milter.ConnectTimeout);
        Socket socket = milter.Path is not null
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (milter.Path is not null) await socket.ConnectAsync(new UnixDomainSocketEndPoint(milter.Path), limit.Token);
            else await socket.ConnectAsync(milter.Host!, milter.Port, limit.Token);
            return new MilterConnection(socket);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            socket.Dispose();
            throw new MilterProtocolException(e is OperationCanceledException ? "connect timed out" : "connect failed: " + e.Message);
        }
    }

    /// <summary>Sends packets (several go out in one write: a macro packet and its event, or a run of header fields).</summary>
    public async Task SendAsync(IReadOnlyList<byte[]> packets, TimeSpan timeout, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            foreach (var packet in packets) await _stream.WriteAsync(packet, limit.Token);
            await _stream.FlushAsync(limit.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            throw new MilterProtocolException(e is OperationCanceledException ? "write timed out" : "write failed: " + e.Message);
        }
    }

    /// <summary>The next reply within <paramref name="timeout"/>; each SMFIR_PROGRESS starts the wait again.</summary>
    public async Task<MilterReply> ReadAsync(TimeSpan timeout, CancellationToken ct)
    {
        while (true)
        {
            var reply = await ReadOneAsync(timeout, ct);
            if (reply is not MilterReply.Simple { Code: MilterReplyCode.Progress }) return reply;
        }
    }

    private async Task<MilterReply> ReadOneAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync(limit.Token);
                var buffer = result.Buffer;
                if (MilterPacket.TryRead(ref buffer, MaxReplyData, out var code, out var data))
                {
                    _input.AdvanceTo(buffer.Start);
                    return MilterReply.Parse(code, data);
                }
                _input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted) throw new MilterProtocolException("the milter closed the connection");
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            throw new MilterProtocolException(e is OperationCanceledException ? "timeout" : "read failed: " + e.Message);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        await _input.CompleteAsync();
        await _stream.DisposeAsync();
    }
}

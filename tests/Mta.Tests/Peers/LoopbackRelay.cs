using System.Net;
using System.Net.Sockets;

namespace Mta.Tests.Peers;

/// <summary>
/// A loopback TCP relay in front of a real server: accepts on <see cref="Port"/>, connects each client to the target
/// and lets the subclass pump each direction (watching, recording or trapping what passes).
/// </summary>
public abstract class LoopbackRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    /// <summary>Where clients connect (127.0.0.1).</summary>
    public int Port { get; }

    /// <summary>Cancelled when the relay stops.</summary>
    protected CancellationToken Stopping { get; }

    /// <summary>Relays 127.0.0.1:<see cref="Port"/> to 127.0.0.1:<paramref name="target"/>.</summary>
    protected LoopbackRelay(int target)
    {
        _target = target;
        Stopping = _stop.Token;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    /// <summary>Client to server, until either side closes.</summary>
    protected abstract Task UpAsync(NetworkStream client, NetworkStream server);

    /// <summary>Server to client, until either side closes.</summary>
    protected abstract Task DownAsync(NetworkStream server, NetworkStream client);

    /// <summary>Passes the end of one direction on.</summary>
    protected static void EndOfInput(NetworkStream to)
    {
        try { to.Socket.Shutdown(SocketShutdown.Send); } catch (Exception) { /* gone */ }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using var _ = client;
        using var server = new TcpClient();
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            await Task.WhenAny(UpAsync(client.GetStream(), server.GetStream()), DownAsync(server.GetStream(), client.GetStream()));
        }
        catch (Exception) { /* either side went away */ }
    }

    /// <summary>Stops relaying.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}

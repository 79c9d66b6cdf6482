using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mta.Tests.Peers;

/// <summary>
/// A loopback TCP relay in front of a real server (here: Azurite's queue service for the ingress), which can run an
/// action right after it has passed a given reply on, e.g. kill the client process between its storage write and
/// what it does next. Everything else passes unchanged.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private Trap? _trap;

    private sealed record Trap(byte[] Marker, TaskCompletionSource Passed, Func<Task> Action);

    /// <summary>Where clients connect.</summary>
    public int Port { get; }

    /// <summary>Relays 127.0.0.1:<see cref="Port"/> to 127.0.0.1:<paramref name="target"/>.</summary>
    public TcpProxy(int target)
    {
        _target = target;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    /// <summary>
    /// The next time a reply chunk containing <paramref name="marker"/> has been passed to a client, runs
    /// <paramref name="action"/> (once). The task ends when the action has run.
    /// </summary>
    public Task AfterReply(string marker, Func<Task> action)
    {
        var passed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _trap = new Trap(Encoding.ASCII.GetBytes(marker), passed, action);
        return passed.Task;
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
            var up = PumpAsync(client.GetStream(), server.GetStream(), replies: false);
            var down = PumpAsync(server.GetStream(), client.GetStream(), replies: true);
            await Task.WhenAny(up, down);
        }
        catch (Exception) { /* either side went away */ }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool replies)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
                if (replies && Volatile.Read(ref _trap) is { } trap && buffer.AsSpan(0, n).IndexOf(trap.Marker) >= 0
                    && Interlocked.CompareExchange(ref _trap, null, trap) is not null)
                {
                    await trap.Action();
                    trap.Passed.TrySetResult();
                }
            }
        }
        catch (Exception) { /* closed */ }
        finally
        {
            try { to.Socket.Shutdown(SocketShutdown.Send); } catch (Exception) { /* gone */ }
        }
    }

    /// <summary>Stops relaying.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}

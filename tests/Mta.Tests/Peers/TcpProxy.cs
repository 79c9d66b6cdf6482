using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mta.Tests.Peers;

/// <summary>
/// A loopback TCP relay in front of a real server (here: Azurite's queue service for the ingress), which can run an
/// action right after it has passed a given reply on, e.g. kill the client process between its storage write and
/// what it does next. Everything else passes unchanged.
/// </summary>
public sealed class TcpProxy(int target) : LoopbackRelay(target)
{
    private Trap? _trap;

    private sealed record Trap(byte[] Marker, TaskCompletionSource Passed, Func<Task> Action);

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

    /// <inheritdoc />
    protected override Task UpAsync(NetworkStream client, NetworkStream server) => PumpAsync(client, server, replies: false);

    /// <inheritdoc />
    protected override Task DownAsync(NetworkStream server, NetworkStream client) => PumpAsync(server, client, replies: true);

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool replies)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, Stopping)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, n), Stopping);
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
            EndOfInput(to);
        }
    }
}

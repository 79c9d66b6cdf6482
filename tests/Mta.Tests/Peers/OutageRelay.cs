using System.Net.Sockets;
using System.Text;

namespace Mta.Tests.Peers;

/// <summary>
/// A loopback relay in front of a storage service that goes down on cue: once armed, when the server's replies carry a
/// marker (e.g. <c>201 Created</c>) for the given time, that reply is lost, every connection is cut and new ones are
/// closed at once, until <see cref="Restore"/>. A storage outage in the middle of a client's work, from the client's side.
/// </summary>
public sealed class OutageRelay(int target, string marker) : LoopbackRelay(target)
{
    private readonly byte[] _marker = Encoding.ASCII.GetBytes(marker);
    private int _seen;
    private int _passes = int.MaxValue;
    private volatile CancellationTokenSource _cut = new();
    private readonly TaskCompletionSource _down = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Ends when the outage has begun.</summary>
    public Task Down => _down.Task;

    /// <summary>Whether the service is unreachable now.</summary>
    public bool IsDown { get; private set; }

    /// <summary>Goes down after <paramref name="passes"/> more replies with the marker.</summary>
    public void Arm(int passes)
    {
        Interlocked.Exchange(ref _seen, 0);
        Volatile.Write(ref _passes, passes);
    }

    /// <summary>Ends the outage: new connections pass again.</summary>
    public void Restore()
    {
        _cut = new CancellationTokenSource();
        IsDown = false;
    }

    /// <inheritdoc />
    protected override Task UpAsync(NetworkStream client, NetworkStream server) => PumpAsync(client, server, replies: false);

    /// <inheritdoc />
    protected override Task DownAsync(NetworkStream server, NetworkStream client) => PumpAsync(server, client, replies: true);

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool replies)
    {
        if (IsDown) return; // refused: the relay closes both ends
        var buffer = new byte[64 * 1024];
        using var both = CancellationTokenSource.CreateLinkedTokenSource(Stopping, _cut.Token);
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, both.Token)) > 0)
            {
                // The reply that brings the outage is lost: the server did the work, the client never hears it.
                if (replies && buffer.AsSpan(0, n).IndexOf(_marker) >= 0 && Interlocked.Increment(ref _seen) == Volatile.Read(ref _passes))
                {
                    IsDown = true;
                    await _cut.CancelAsync();
                    _down.TrySetResult();
                    return;
                }
                await to.WriteAsync(buffer.AsMemory(0, n), both.Token);
            }
        }
        catch (Exception) { /* cut, or closed */ }
    }
}

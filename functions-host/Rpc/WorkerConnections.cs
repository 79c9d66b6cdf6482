using System.Collections.Concurrent;
using Mta.Functions.Host.Worker;

namespace Mta.Functions.Host.Rpc;

/// <summary>
/// Launched workers waiting for their stream: a worker connects to the host's gRPC endpoint and names itself in
/// its StartStream; only an id the host launched is taken, any other stream is refused.
/// </summary>
public sealed class WorkerConnections
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<WorkerChannel>> _pending = new(StringComparer.Ordinal);

    /// <summary>Registers a worker about to be launched; the task ends when its stream arrives.</summary>
    public Task<WorkerChannel> Expect(string workerId) =>
        _pending.GetOrAdd(workerId, _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>Gives up on a worker that did not connect.</summary>
    public void Forget(string workerId)
    {
        if (_pending.TryRemove(workerId, out var tcs)) tcs.TrySetCanceled();
    }

    /// <summary>Hands a stream to the launch waiting for it; false for an id nobody launched, or one already connected.</summary>
    internal bool TryAccept(string workerId, WorkerChannel channel) =>
        _pending.TryRemove(workerId, out var tcs) && tcs.TrySetResult(channel);
}

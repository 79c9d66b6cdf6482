using Grpc.Core;
using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Protocol;
using Mta.Functions.Host.Worker;

namespace Mta.Functions.Host.Rpc;

/// <summary>
/// The host's side of <c>FunctionRpc.EventStream</c>: a worker opens the stream and sends StartStream; from then on
/// the stream belongs to that worker's <see cref="WorkerChannel"/>, and the call lasts as long as the worker.
/// </summary>
public sealed class FunctionRpcService(WorkerConnections connections, RpcLogRelay logs, ILogger<FunctionRpcService> logger)
    : FunctionRpc.FunctionRpcBase
{
    /// <inheritdoc />
    public override async Task EventStream(IAsyncStreamReader<StreamingMessage> requestStream,
        IServerStreamWriter<StreamingMessage> responseStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken)) return;
        var first = requestStream.Current;
        if (first.ContentCase != StreamingMessage.ContentOneofCase.StartStream)
        {
            logger.LogError("A worker stream began with {Message}, not StartStream; closed", first.ContentCase);
            return;
        }
        var channel = new WorkerChannel(first.StartStream.WorkerId, requestStream, responseStream, logs);
        if (!connections.TryAccept(first.StartStream.WorkerId, channel))
        {
            logger.LogError("A stream from worker id {WorkerId}, which this host did not launch, was refused", first.StartStream.WorkerId);
            return;
        }
        await channel.RunAsync(context.CancellationToken);
    }
}

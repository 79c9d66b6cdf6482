using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Mta.Functions.Host.Protocol;
using static Mta.Functions.Host.Protocol.StreamingMessage;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// One worker's event stream, seen from the host: requests go out through a single writer (a gRPC stream takes one
/// write at a time), responses are matched to their requests by kind and id, and logs go to the host's log. When the
/// stream ends, every request still waiting fails with <see cref="WorkerGoneException"/>.
/// </summary>
public sealed class WorkerChannel
{
    private readonly IAsyncStreamReader<StreamingMessage> _input;
    private readonly IServerStreamWriter<StreamingMessage> _output;
    private readonly RpcLogRelay _logs;
    private readonly Channel<StreamingMessage> _outbox = Channel.CreateUnbounded<StreamingMessage>(new() { SingleReader = true });
    private readonly ConcurrentDictionary<string, TaskCompletionSource<StreamingMessage>> _waiting = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _gone;

    internal WorkerChannel(string workerId, IAsyncStreamReader<StreamingMessage> input, IServerStreamWriter<StreamingMessage> output, RpcLogRelay logs)
    {
        WorkerId = workerId;
        _input = input;
        _output = output;
        _logs = logs;
    }

    /// <summary>The id the worker was launched with.</summary>
    public string WorkerId { get; }

    /// <summary>Ends when the stream has ended, for whatever reason.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Runs the stream until it ends; called by the gRPC service for the stream's whole life.</summary>
    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        var writer = WriteAsync(cancellationToken);
        try
        {
            while (await _input.MoveNext(cancellationToken))
                Dispatch(_input.Current);
        }
        catch (Exception e) when (e is IOException or Grpc.Core.RpcException or OperationCanceledException) { /* the worker went away */ }
        finally
        {
            _gone = true;
            _outbox.Writer.TryComplete();
            foreach (var key in _waiting.Keys)
                if (_waiting.TryRemove(key, out var tcs)) tcs.TrySetException(new WorkerGoneException(WorkerId));
            try { await writer; } catch (Exception) { /* the stream is gone already */ }
            _completion.TrySetResult();
        }
    }

    private async Task WriteAsync(CancellationToken cancellationToken)
    {
        await foreach (var message in _outbox.Reader.ReadAllAsync(cancellationToken))
            await _output.WriteAsync(message, cancellationToken);
    }

    private void Dispatch(StreamingMessage message)
    {
        var key = message.ContentCase switch
        {
            ContentOneofCase.RpcLog => null,
            ContentOneofCase.WorkerInitResponse => "init",
            ContentOneofCase.FunctionMetadataResponse => "metadata",
            ContentOneofCase.FunctionLoadResponse => "load:" + message.FunctionLoadResponse.FunctionId,
            ContentOneofCase.InvocationResponse => "invocation:" + message.InvocationResponse.InvocationId,
            _ => null,
        };
        if (message.ContentCase == ContentOneofCase.RpcLog)
            _logs.Write(message.RpcLog);
        else if (key is not null && _waiting.TryRemove(key, out var tcs))
            tcs.TrySetResult(message);
    }

    private async Task<StreamingMessage> RequestAsync(string key, StreamingMessage request, CancellationToken cancellationToken)
    {
        var tcs = new TaskCompletionSource<StreamingMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_waiting.TryAdd(key, tcs)) throw new InvalidOperationException($"a request {key} is already waiting");
        Send(request);
        if (_gone && _waiting.TryRemove(key, out _)) throw new WorkerGoneException(WorkerId);
        using var registration = cancellationToken.Register(() =>
        {
            if (_waiting.TryRemove(key, out var t)) t.TrySetCanceled(cancellationToken);
        });
        return await tcs.Task;
    }

    private void Send(StreamingMessage message)
    {
        message.RequestId = Guid.NewGuid().ToString();
        if (!_outbox.Writer.TryWrite(message)) throw new WorkerGoneException(WorkerId);
    }

    /// <summary>WorkerInitRequest, answered by WorkerInitResponse.</summary>
    public async Task<WorkerInitResponse> InitializeAsync(WorkerInitRequest request, CancellationToken cancellationToken) =>
        (await RequestAsync("init", new StreamingMessage { WorkerInitRequest = request }, cancellationToken)).WorkerInitResponse;

    /// <summary>FunctionsMetadataRequest: the worker indexes its functions.</summary>
    public async Task<FunctionMetadataResponse> GetMetadataAsync(string appDirectory, CancellationToken cancellationToken) =>
        (await RequestAsync("metadata", new StreamingMessage
        {
            FunctionsMetadataRequest = new FunctionsMetadataRequest { FunctionAppDirectory = appDirectory },
        }, cancellationToken)).FunctionMetadataResponse;

    /// <summary>FunctionLoadRequest for one function.</summary>
    public async Task<FunctionLoadResponse> LoadAsync(RpcFunctionMetadata metadata, CancellationToken cancellationToken) =>
        (await RequestAsync("load:" + metadata.FunctionId, new StreamingMessage
        {
            FunctionLoadRequest = new FunctionLoadRequest { FunctionId = metadata.FunctionId, Metadata = metadata },
        }, cancellationToken)).FunctionLoadResponse;

    /// <summary>Sends an invocation; the task ends with the worker's response, or fails if the worker goes away first.</summary>
    public async Task<InvocationResponse> InvokeAsync(InvocationRequest request) =>
        (await RequestAsync("invocation:" + request.InvocationId, new StreamingMessage { InvocationRequest = request }, CancellationToken.None))
        .InvocationResponse;

    /// <summary>Asks the worker to cancel an invocation (its function's cancellation token fires); the response still comes.</summary>
    public void Cancel(string invocationId)
    {
        if (!_gone) _outbox.Writer.TryWrite(new StreamingMessage { InvocationCancel = new InvocationCancel { InvocationId = invocationId } });
    }

    /// <summary>WorkerTerminate: the worker stops itself within <paramref name="gracePeriod"/>.</summary>
    public void Terminate(TimeSpan gracePeriod)
    {
        if (!_gone) _outbox.Writer.TryWrite(new StreamingMessage { WorkerTerminate = new WorkerTerminate { GracePeriod = Duration.FromTimeSpan(gracePeriod) } });
    }
}

/// <summary>The worker's stream ended (the process died, or closed it) before it answered.</summary>
public sealed class WorkerGoneException(string workerId) : Exception($"worker {workerId} went away before it answered");

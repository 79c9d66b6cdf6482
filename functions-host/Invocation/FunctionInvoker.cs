using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Configuration;
using Mta.Functions.Host.Protocol;
using Mta.Functions.Host.Worker;

namespace Mta.Functions.Host.Invocation;

/// <summary>
/// Runs one invocation in the worker and turns its outcome into what the queue listener understands: a response
/// with Success completes; Failure or Cancelled, a worker that goes away, or a run past <c>functionTimeout</c>
/// (after an InvocationCancel) throws, so the listener makes the message visible again and poisons it after
/// <c>maxDequeueCount</c> failures, as in Azure.
/// </summary>
public sealed class FunctionInvoker(WorkerSupervisor supervisor, FunctionsHostOptions options, ShutdownGrace grace, ILogger<FunctionInvoker> logger)
{
    /// <summary>How long a timed-out invocation's worker may take to confirm the cancel before the failure is reported.</summary>
    internal static readonly TimeSpan CancelAnswerWait = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Invokes <paramref name="functionName"/>. The listener's own token is not passed on: at shutdown an invocation
    /// in flight may finish within the grace period (<see cref="ShutdownGrace"/>), and only then is it cancelled.
    /// </summary>
    public async Task InvokeAsync(string functionName, object trigger, IReadOnlyDictionary<string, object?> bindingData,
        CancellationToken listenerToken)
    {
        _ = listenerToken;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(grace.Expired);
        if (options.FunctionTimeout is { } timeout) deadline.CancelAfter(timeout);
        var invocationId = Guid.NewGuid().ToString();

        RunningWorker worker;
        try { worker = await supervisor.ReadyAsync(deadline.Token); }
        catch (OperationCanceledException) { throw Stopped(functionName, invocationId, "found no worker ready"); }
        if (!worker.Functions.TryGetValue(functionName, out var function))
            throw new InvalidOperationException($"function {functionName} is not loaded in the worker");
        var request = InvocationRequests.ForQueueMessage(function, invocationId, trigger, bindingData);
        var channel = worker.Channel;
        var response = channel.InvokeAsync(request);
        InvocationResponse answer;
        try { answer = await response.WaitAsync(deadline.Token); }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            channel.Cancel(request.InvocationId);
            var answered = await Task.WhenAny(response, Task.Delay(CancelAnswerWait)) == response && response.IsCompletedSuccessfully;
            throw Stopped(functionName, request.InvocationId,
                "was cancelled; the worker " + (answered ? $"answered {response.Result.Result?.Status}" : $"did not answer within {CancelAnswerWait.TotalSeconds} s"));
        }
        var result = answer.Result;
        if (result?.Status != StatusResult.Types.Status.Success)
            throw new FunctionFailedException(functionName, request.InvocationId, result);
    }

    private FunctionTimeoutException Stopped(string functionName, string invocationId, string what)
    {
        var reason = grace.Expired.IsCancellationRequested ? "the host is stopping and its grace period is over" : $"functionTimeout {options.FunctionTimeout} passed";
        logger.LogError("Invocation {InvocationId} of {Function} {What}: {Reason}", invocationId, functionName, what, reason);
        return new FunctionTimeoutException($"{functionName} ({invocationId}) {what}: {reason}");
    }
}

/// <summary>The worker answered an invocation with Failure or Cancelled.</summary>
public sealed class FunctionFailedException(string functionName, string invocationId, StatusResult? result)
    : Exception($"{functionName} ({invocationId}) {(result?.Status == StatusResult.Types.Status.Cancelled ? "was cancelled" : "failed")}: " +
        (result?.Exception is { } e ? $"{e.Type}: {e.Message}" : result?.Result ?? "no result"),
        result?.Exception is { } inner ? new WorkerException(inner) : null);

/// <summary>An invocation ran past <c>functionTimeout</c>, or past the shutdown grace period.</summary>
public sealed class FunctionTimeoutException(string message) : Exception(message);

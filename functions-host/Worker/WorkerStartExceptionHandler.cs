using System.Runtime.ExceptionServices;
using Microsoft.Azure.WebJobs.Host.Timers;
using Microsoft.Extensions.Logging;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// The WebJobs SDK's exception handler, except while the host stops because its first worker could not start. The
/// SDK's handler ends the process on a listener's unhandled exception (it rethrows it on a thread of its own); a queue
/// listener whose first poll fails in that window would then abort the host with a stack dump (exit 134) instead of the
/// one-line report of the worker's failure that <c>Program</c> gives. Everything else goes to the SDK's handler.
/// </summary>
public sealed class WorkerStartExceptionHandler(WorkerSupervisor supervisor, Microsoft.Extensions.Hosting.IHost host,
    ILogger<WorkerStartExceptionHandler> log) : IWebJobsExceptionHandler
{
    private readonly IWebJobsExceptionHandler _sdk = new WebJobsExceptionHandler(host);

    /// <inheritdoc />
    public Task OnTimeoutExceptionAsync(ExceptionDispatchInfo exceptionInfo, TimeSpan timeoutGracePeriod)
        => _sdk.OnTimeoutExceptionAsync(exceptionInfo, timeoutGracePeriod);

    /// <inheritdoc />
    public Task OnUnhandledExceptionAsync(ExceptionDispatchInfo exceptionInfo)
    {
        if (supervisor.StartFailure is null) return _sdk.OnUnhandledExceptionAsync(exceptionInfo);
        log.LogDebug("after the worker's failure to start: {Error}", exceptionInfo.SourceException.Message);
        return Task.CompletedTask;
    }
}

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Configuration;
using Mta.Functions.Host.Rpc;
using Mta.Functions.Host.Triggers;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// Keeps one worker process running, as the Functions host's worker channel manager does: starts the gRPC endpoint,
/// launches the worker, completes the handshake (<see cref="WorkerHandshake"/>), and when the worker dies, lets its
/// invocations in flight fail (their queue messages come back) and starts a new one after a doubling delay. At stop it
/// sends WorkerTerminate and kills a worker that does not end in time.
/// </summary>
/// <remarks>
/// The functions to listen for are read from the app's functions.metadata when the host starts, so the queue
/// listeners start while the worker is still starting (its start-up is most of a cold start); invocations wait until
/// the worker has loaded them. The worker's own indexing must then agree, function by function, or the host stops.
/// </remarks>
public sealed class WorkerSupervisor : IHostedService, IAsyncDisposable
{
    /// <summary>How long a worker told to terminate may take before it is killed.</summary>
    internal static readonly TimeSpan TerminateGracePeriod = TimeSpan.FromSeconds(5);

    private readonly WorkerHandshake _handshake;
    private readonly FunctionsHostOptions _options;
    private readonly RpcServer _server;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource<RunningWorker> _ready = NewReady();
    private RunningWorker? _current;
    private Task _supervision = Task.CompletedTask;

    /// <summary>Creates the supervisor; nothing starts before <see cref="StartAsync"/>.</summary>
    public WorkerSupervisor(WorkerHandshake handshake, FunctionsHostOptions options, RpcServer server, IHostApplicationLifetime lifetime,
        ILoggerFactory loggers)
    {
        _handshake = handshake;
        _options = options;
        _server = server;
        _lifetime = lifetime;
        _logger = loggers.CreateLogger("Host.Worker");
    }

    /// <summary>The functions listened for and loaded in the worker (after start).</summary>
    public IReadOnlyList<QueueFunction> Functions { get; private set; } = [];

    /// <summary>Why the first worker did not start, if it did not; the host is then stopping.</summary>
    public WorkerStartException? StartFailure { get; private set; }

    /// <summary>The running worker's process id, if one runs.</summary>
    public int? WorkerProcessId => _current?.Process.Id;

    /// <summary>The worker that serves invocations now, once it is ready; waits while a dead one is replaced.</summary>
    public Task<RunningWorker> ReadyAsync(CancellationToken cancellationToken) => _ready.Task.WaitAsync(cancellationToken);

    /// <summary>
    /// Reads the functions to listen for, starts the endpoint and launches the first worker; the handshake goes on
    /// while the rest of the host starts. A worker that cannot start stops the host (<see cref="StartFailure"/>).
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Functions = Expected(FunctionMetadataFile.Load(_handshake.Description.Directory), _options);
        _server.Listen();
        _supervision = StartFirstAsync(); // spawns the worker before anything else here waits
        await _server.StartAsync(cancellationToken);
        _logger.LogDebug("gRPC endpoint listening on 127.0.0.1:{Port}", _server.Port);
    }

    /// <summary>The functions of functions.metadata that the allow-list admits; an admitted name that is not there is an error.</summary>
    public static IReadOnlyList<QueueFunction> Expected(IReadOnlyList<Protocol.RpcFunctionMetadata> listed, FunctionsHostOptions options)
    {
        var names = listed.Select(m => m.Name).ToList();
        var missing = options.Functions.Where(n => !names.Contains(n, StringComparer.OrdinalIgnoreCase)).ToList();
        if (missing.Count > 0)
            throw new WorkerStartException($"function(s) {string.Join(", ", missing)} not found in the app (functions.metadata has {string.Join(", ", names.Order())})", "");
        var admitted = listed.Where(m => options.Admits(m.Name)).Select(QueueFunction.From).OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        return admitted.Count > 0 ? admitted : throw new WorkerStartException("the app has no functions (functions.metadata is empty)", "");
    }

    private async Task StartFirstAsync()
    {
        RunningWorker worker;
        try
        {
            worker = await _handshake.LaunchAsync(_server.Port, Functions, _stopping.Token) with { NextDelay = _options.MinimalRestartDelay };
        }
        catch (WorkerStartException e)
        {
            StartFailure = e;
            _ready.TrySetException(e);
            _logger.LogCritical("The worker did not start: {Message}", e.Message);
            _lifetime.StopApplication();
            return;
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            _ready.TrySetCanceled();
            return;
        }
        _logger.LogInformation("Functions:");
        foreach (var f in Functions) _logger.LogInformation("        {Name}: queueTrigger ({Queue})", f.Name, f.QueueName);
        _logger.LogInformation("Worker process started and initialized: pid {Pid}, {Executable} {Worker}, gRPC on 127.0.0.1:{Port}",
            worker.Process.Id, _handshake.Description.Executable, _handshake.Description.WorkerPath, _server.Port);
        Publish(worker);
        await SuperviseAsync(worker);
    }

    private void Publish(RunningWorker worker)
    {
        _current = worker;
        _ready.TrySetResult(worker);
    }

    private async Task SuperviseAsync(RunningWorker worker)
    {
        while (!_stopping.IsCancellationRequested)
        {
            await Task.WhenAny(worker.Process.Exited, worker.Channel.Completion);
            if (_stopping.IsCancellationRequested) return;
            _ready = NewReady();
            worker.Process.Kill(); // a worker whose stream ended but whose process lives is of no use
            var code = await worker.Process.Exited;
            var next = await RestartAsync(worker, code);
            if (next is null) return;
            worker = next;
        }
    }

    private async Task<RunningWorker?> RestartAsync(RunningWorker dead, int exitCode)
    {
        var delay = DateTimeOffset.UtcNow - dead.Started > 2 * _options.MaximalRestartDelay ? _options.MinimalRestartDelay : dead.NextDelay;
        while (true)
        {
            _logger.LogError("Worker process {Pid} ended (exit code {Code}); its invocations in flight failed and their messages come back. Restarting in {Delay}.{Output}",
                dead.Process.Id, exitCode, delay, dead.Process.Tail is { Length: > 0 } tail ? Environment.NewLine + tail : "");
            try
            {
                await Task.Delay(delay, _stopping.Token);
                var next = await _handshake.LaunchAsync(_server.Port, Functions, _stopping.Token) with
                {
                    NextDelay = Min(delay * 2, _options.MaximalRestartDelay),
                };
                _logger.LogInformation("Worker process restarted: pid {Pid}", next.Process.Id);
                Publish(next);
                return next;
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested) { return null; }
            catch (WorkerStartException e)
            {
                _logger.LogError("Worker restart failed: {Message}", e.Message);
                delay = Min(delay * 2, _options.MaximalRestartDelay);
            }
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>Terminates the worker (WorkerTerminate, then SIGKILL after the grace period) and stops the endpoint.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        if (_current is { } worker)
        {
            worker.Channel.Terminate(TerminateGracePeriod);
            try { await worker.Process.Exited.WaitAsync(TerminateGracePeriod, cancellationToken); }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException)
            {
                _logger.LogWarning("Worker process {Pid} did not end within {Grace} of WorkerTerminate; killed", worker.Process.Id, TerminateGracePeriod);
                worker.Process.Kill();
            }
        }
        try { await _supervision; } catch (OperationCanceledException) { }
        _ready.TrySetCanceled();
        await _server.StopAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _current?.Process.Kill();
        _current?.Process.Dispose();
        await _server.DisposeAsync();
        _stopping.Dispose();
    }

    private static TaskCompletionSource<RunningWorker> NewReady() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>A worker that finished its handshake: its process, its stream, and the functions it loaded (by name).</summary>
public sealed record RunningWorker(WorkerProcess Process, WorkerChannel Channel, IReadOnlyDictionary<string, QueueFunction> Functions)
{
    /// <summary>When it was ready.</summary>
    public DateTimeOffset Started { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The delay before the next restart, should this worker die soon.</summary>
    public TimeSpan NextDelay { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>A worker did not start: it exited, did not connect in time, or answered the handshake with an error.</summary>
public sealed class WorkerStartException(string message, string output)
    : Exception(output.Length == 0 ? message : message + Environment.NewLine + "worker output:" + Environment.NewLine + output);

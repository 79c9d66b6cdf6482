using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Configuration;
using Mta.Functions.Host.Protocol;
using Mta.Functions.Host.Rpc;
using Mta.Functions.Host.Triggers;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// Launches one worker and takes it through the Functions host's start sequence: the worker connects and sends
/// StartStream; the host sends WorkerInitRequest, then FunctionsMetadataRequest, then a FunctionLoadRequest for each
/// function the allow-list admits. Anything else — an exit, no connection within the startup timeout, an error in
/// a response — is a <see cref="WorkerStartException"/> with the worker's last output, and the process is killed.
/// </summary>
public sealed class WorkerHandshake(WorkerDescription description, FunctionsHostOptions options,
    IReadOnlyDictionary<string, string?> appSettings, WorkerConnections connections, ILoggerFactory loggers)
{
    /// <summary>The host version this stand-in reports, the Functions runtime it follows.</summary>
    public const string HostVersion = "4.1000.0 (Mta.Functions.Host)";

    private readonly ILogger _output = loggers.CreateLogger("Host.Function.Console");
    private readonly ILogger _log = loggers.CreateLogger("Host.Worker");

    /// <summary>The app's worker description.</summary>
    public WorkerDescription Description => description;

    /// <summary>
    /// Launches a worker and loads <paramref name="expected"/> in it, under the ids this worker gives them; its own
    /// indexing must list each of them with the same trigger.
    /// </summary>
    public async Task<RunningWorker> LaunchAsync(int rpcPort, IReadOnlyList<QueueFunction> expected, CancellationToken cancellationToken)
    {
        var workerId = Guid.NewGuid().ToString();
        var connected = connections.Expect(workerId);
        var label = options.Functions.Count > 0 ? string.Join(",", options.Functions) : "functions";
        var process = WorkerProcess.Start(WorkerLaunch.StartInfo(description, rpcPort, workerId, Guid.NewGuid().ToString(), appSettings), _output, label);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.WorkerStartupTimeout);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        _log.LogDebug("Worker process {Pid} spawned", process.Id);
        try
        {
            var channel = await ConnectedAsync(connected, process, timeout.Token);
            _log.LogDebug("Worker process {Pid} connected after {Elapsed} ms", process.Id, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            var functions = await LoadAsync(channel, expected, timeout.Token);
            _log.LogDebug("Worker process {Pid} initialized and loaded after {Elapsed} ms", process.Id, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return new RunningWorker(process, channel, functions);
        }
        catch (Exception e) when (e is not WorkerStartException && !cancellationToken.IsCancellationRequested)
        {
            process.Kill();
            await process.Exited.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
            throw new WorkerStartException(Describe(e), process.Tail);
        }
        catch (Exception)
        {
            process.Kill();
            throw;
        }
        finally
        {
            connections.Forget(workerId);
        }
    }

    private string Describe(Exception e) => e switch
    {
        OperationCanceledException => $"the worker did not finish starting within {options.WorkerStartupTimeout} ({description.Executable} {description.WorkerPath})",
        WorkerGoneException => "the worker closed its stream during the handshake",
        _ => e.Message,
    };

    private async Task<WorkerChannel> ConnectedAsync(Task<WorkerChannel> connected, WorkerProcess process, CancellationToken cancellationToken)
    {
        var first = await Task.WhenAny(connected, process.Exited).WaitAsync(cancellationToken);
        if (first == connected) return await connected;
        throw new WorkerStartException($"the worker exited with code {await process.Exited} before it connected ({description.Executable} {description.WorkerPath})", process.Tail);
    }

    private async Task<IReadOnlyDictionary<string, QueueFunction>> LoadAsync(WorkerChannel channel, IReadOnlyList<QueueFunction> expected, CancellationToken cancellationToken)
    {
        var init = await channel.InitializeAsync(new WorkerInitRequest
        {
            HostVersion = HostVersion,
            WorkerDirectory = description.Directory,
            FunctionAppDirectory = description.Directory,
        }, cancellationToken);
        Check(init.Result, "WorkerInitRequest");
        var metadata = await channel.GetMetadataAsync(description.Directory, cancellationToken);
        Check(metadata.Result, "FunctionsMetadataRequest");
        var all = metadata.UseDefaultMetadataIndexing ? FunctionMetadataFile.Load(description.Directory) : metadata.FunctionMetadataResults;
        var chosen = Choose(all, expected);
        // As the Functions host does: every load request goes out at once, then the answers are awaited.
        var loads = chosen.Select(f => (f.Name, Answer: channel.LoadAsync(f.Metadata, cancellationToken))).ToList();
        foreach (var (name, answer) in loads)
            Check((await answer).Result, $"FunctionLoadRequest for {name}");
        return chosen.ToDictionary(f => f.Name, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The worker's own metadata for each expected function (its function id is the worker's); a function the worker
    /// does not index, or indexes with another trigger, is an error.
    /// </summary>
    internal static IReadOnlyList<QueueFunction> Choose(IEnumerable<RpcFunctionMetadata> indexed, IReadOnlyList<QueueFunction> expected)
    {
        var byName = indexed.ToDictionary(m => m.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var m in byName.Values.Where(m => string.IsNullOrEmpty(m.FunctionId))) m.FunctionId = Guid.NewGuid().ToString();
        var missing = expected.Where(f => !byName.ContainsKey(f.Name)).Select(f => f.Name).ToList();
        if (missing.Count > 0)
            throw new WorkerStartException($"function(s) {string.Join(", ", missing)} not found in the worker (it has {string.Join(", ", byName.Keys.Order())})", "");
        var chosen = expected.Select(f => QueueFunction.From(byName[f.Name])).ToList();
        foreach (var (mine, theirs) in expected.Zip(chosen))
            if ((mine.QueueName, mine.Connection, mine.ParameterName, mine.DeferredBinding) != (theirs.QueueName, theirs.Connection, theirs.ParameterName, theirs.DeferredBinding))
                throw new WorkerStartException($"function {mine.Name}: the worker's trigger ({theirs.QueueName}, {theirs.Connection}, {theirs.ParameterName}, " +
                    $"deferred binding {theirs.DeferredBinding}) differs from functions.metadata's ({mine.QueueName}, {mine.Connection}, {mine.ParameterName}, " +
                    $"deferred binding {mine.DeferredBinding})", "");
        return chosen;
    }

    private static void Check(StatusResult? result, string request)
    {
        if (result?.Status == StatusResult.Types.Status.Success) return;
        var detail = result?.Exception is { } e ? $"{e.Type}: {e.Message}" : result?.Result;
        throw new InvalidOperationException($"the worker answered {request} with {result?.Status.ToString() ?? "no result"}" + (string.IsNullOrEmpty(detail) ? "" : ": " + detail));
    }
}

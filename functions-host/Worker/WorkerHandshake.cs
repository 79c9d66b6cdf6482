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

    /// <summary>The app's worker description.</summary>
    public WorkerDescription Description => description;

    /// <summary>
    /// Launches a worker and loads its functions: those the allow-list admits, or on a restart exactly
    /// <paramref name="known"/> (the same functions, under the ids this worker gives them).
    /// </summary>
    public async Task<RunningWorker> LaunchAsync(int rpcPort, IReadOnlyList<QueueFunction>? known, CancellationToken cancellationToken)
    {
        var workerId = Guid.NewGuid().ToString();
        var connected = connections.Expect(workerId);
        var label = options.Functions.Count > 0 ? string.Join(",", options.Functions) : "functions";
        var process = WorkerProcess.Start(WorkerLaunch.StartInfo(description, rpcPort, workerId, Guid.NewGuid().ToString(), appSettings), _output, label);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.WorkerStartupTimeout);
        try
        {
            var channel = await ConnectedAsync(connected, process, timeout.Token);
            var functions = await LoadAsync(channel, known, timeout.Token);
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

    private async Task<IReadOnlyDictionary<string, QueueFunction>> LoadAsync(WorkerChannel channel, IReadOnlyList<QueueFunction>? known, CancellationToken cancellationToken)
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
        var chosen = Choose(all, known);
        foreach (var function in chosen)
            Check((await channel.LoadAsync(function.Metadata, cancellationToken)).Result, $"FunctionLoadRequest for {function.Name}");
        return chosen.ToDictionary(f => f.Name, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The functions to load: the admitted ones, or on a restart the ones loaded before, each of which must still be there.</summary>
    internal IReadOnlyList<QueueFunction> Choose(IEnumerable<RpcFunctionMetadata> indexed, IReadOnlyList<QueueFunction>? known)
    {
        var byName = indexed.ToDictionary(m => m.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var m in byName.Values.Where(m => string.IsNullOrEmpty(m.FunctionId))) m.FunctionId = Guid.NewGuid().ToString();
        var names = known?.Select(f => f.Name).ToList() ?? byName.Keys.Where(options.Admits).ToList();
        var missing = (known is null ? options.Functions : names).Where(n => !byName.ContainsKey(n)).ToList();
        if (missing.Count > 0)
            throw new WorkerStartException($"function(s) {string.Join(", ", missing)} not found in the worker (it has {string.Join(", ", byName.Keys.Order())})", "");
        if (names.Count == 0)
            throw new WorkerStartException("the worker reported no functions", "");
        return names.Select(n => QueueFunction.From(byName[n])).ToList();
    }

    private static void Check(StatusResult? result, string request)
    {
        if (result?.Status == StatusResult.Types.Status.Success) return;
        var detail = result?.Exception is { } e ? $"{e.Type}: {e.Message}" : result?.Result;
        throw new InvalidOperationException($"the worker answered {request} with {result?.Status.ToString() ?? "no result"}" + (string.IsNullOrEmpty(detail) ? "" : ": " + detail));
    }
}

using System.Diagnostics;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// How the Functions host starts an isolated worker: its command line (the switches worker 2.x reads, and the
/// legacy ones the host still passes) and its environment (the host's own, the app settings, and the app and
/// worker folders). Pure, so the launch can be checked without starting anything.
/// </summary>
public static class WorkerLaunch
{
    /// <summary>The largest gRPC message either side accepts, as the Functions host passes it.</summary>
    public const int MaxMessageLength = int.MaxValue;

    /// <summary>The start information for one worker process.</summary>
    /// <param name="description">The app's worker.config.json.</param>
    /// <param name="rpcPort">The host's loopback gRPC port.</param>
    /// <param name="workerId">Identifies this process's stream (its StartStream carries it back).</param>
    /// <param name="requestId">Identifies the start request.</param>
    /// <param name="appSettings">App settings for the worker's environment (<c>:</c> becomes <c>__</c>).</param>
    public static ProcessStartInfo StartInfo(WorkerDescription description, int rpcPort, string workerId, string requestId,
        IReadOnlyDictionary<string, string?> appSettings)
    {
        var psi = new ProcessStartInfo(description.Executable)
        {
            WorkingDirectory = description.Directory,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in Arguments(description, rpcPort, workerId, requestId)) psi.ArgumentList.Add(a);
        foreach (var (key, value) in Environment(description, appSettings)) psi.Environment[key] = value;
        return psi;
    }

    /// <summary>The command line after the executable.</summary>
    public static IReadOnlyList<string> Arguments(WorkerDescription description, int rpcPort, string workerId, string requestId)
    {
        var uri = $"http://127.0.0.1:{rpcPort}/";
        var max = MaxMessageLength.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return [.. description.Arguments, description.WorkerPath, .. description.WorkerArguments,
            "--host", "127.0.0.1", "--port", rpcPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--workerId", workerId, "--requestId", requestId, "--grpcMaxMessageLength", max,
            "--functions-uri", uri, "--functions-worker-id", workerId, "--functions-request-id", requestId,
            "--functions-grpc-max-message-length", max];
    }

    /// <summary>What the worker's environment adds to the host's: the app settings and the folders it resolves against.</summary>
    public static IReadOnlyDictionary<string, string?> Environment(WorkerDescription description, IReadOnlyDictionary<string, string?> appSettings)
    {
        var env = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var (key, value) in appSettings) env[key.Replace(":", "__")] = value;
        env["FUNCTIONS_WORKER_RUNTIME"] = "dotnet-isolated";
        env["FUNCTIONS_WORKER_DIRECTORY"] = description.Directory;
        env["FUNCTIONS_APPLICATION_DIRECTORY"] = description.Directory;
        env["AzureWebJobsScriptRoot"] = description.Directory;
        return env;
    }
}

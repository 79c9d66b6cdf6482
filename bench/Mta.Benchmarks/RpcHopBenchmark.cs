using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Mta.Functions.Host.Configuration;
using Mta.Functions.Host.Invocation;
using Mta.Functions.Host.Protocol;
using Mta.Functions.Host.Rpc;
using Mta.Functions.Host.Triggers;
using Mta.Functions.Host.Worker;
using Mta.Mail.Contracts;

namespace Mta.Benchmarks;

/// <summary>
/// What one invocation costs on the way between the local functions host and the isolated worker, with nothing else in
/// it: the host's side of the protocol (this process) drives the real worker from a functions app folder, invoking
/// <c>Bounce</c> with a report for the null sender, which the stage drops at once (no storage, its log line filtered
/// out in the worker). Prints the round trip's latency one at a time, and the rate and each process's CPU per
/// invocation with 16 in flight, as a queue batch runs.
/// </summary>
public static class RpcHopBenchmark
{
    /// <summary><c>rpc-hop --app DIR [--invocations N]</c>.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var app = Arg(args, "--app") ?? throw new ArgumentException("--app DIR (the functions build or publish output) is required");
        var n = int.Parse(Arg(args, "--invocations") ?? "20000", System.Globalization.CultureInfo.InvariantCulture);
        var connections = new WorkerConnections();
        await using var server = new RpcServer(connections, new RpcLogRelay(NullLoggerFactory.Instance));
        await server.StartAsync(default);
        var settings = new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true", ["Mta:MetricsPort"] = "0",
            ["Logging:LogLevel:Default"] = "Warning", ["Logging:LogLevel:Mta"] = "Error",
        };
        var description = WorkerDescription.Load(Path.GetFullPath(app));
        var handshake = new WorkerHandshake(description, new FunctionsHostOptions(), settings, connections, NullLoggerFactory.Instance);
        var launched = Stopwatch.StartNew();
        var functions = WorkerSupervisor.Expected(FunctionMetadataFile.Load(description.Directory), new FunctionsHostOptions());
        var worker = await handshake.LaunchAsync(server.Port, functions, default);
        Console.WriteLine($"worker launched and loaded in {launched.ElapsedMilliseconds} ms (pid {worker.Process.Id})");
        try
        {
            var bounce = worker.Functions["Bounce"];
            var text = QueueJson.Serialize(new ReportJob
            {
                MessageId = "B0", BlobName = "B0", Sender = "", ArrivalTime = DateTimeOffset.UtcNow,
                Recipients = [new ReportedRecipient("x@example.test", "550 5.1.1 no such user")],
            });
            async Task InvokeAsync()
            {
                var request = InvocationRequests.ForQueueMessage(bounce, Guid.NewGuid().ToString(), text, new Dictionary<string, object?>());
                var result = (await worker.Channel.InvokeAsync(request)).Result;
                if (result.Status != StatusResult.Types.Status.Success) throw new InvalidOperationException(result.Exception?.Message);
            }

            await RunManyAsync(InvokeAsync, n, 16); // warm-up: both sides JIT-compiled and tiered up
            var latencies = new double[Math.Min(n, 5000)];
            for (var i = 0; i < latencies.Length; i++)
            {
                var t = Stopwatch.GetTimestamp();
                await InvokeAsync();
                latencies[i] = Stopwatch.GetElapsedTime(t).TotalMicroseconds;
            }
            Array.Sort(latencies);
            Console.WriteLine($"round trip, one at a time: p50 {latencies[latencies.Length / 2]:0} us, p99 {latencies[latencies.Length * 99 / 100]:0} us");

            using var workerProcess = Process.GetProcessById(worker.Process.Id);
            var host0 = Process.GetCurrentProcess().TotalProcessorTime;
            var worker0 = workerProcess.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            await RunManyAsync(InvokeAsync, n, 16);
            var elapsed = clock.Elapsed;
            workerProcess.Refresh();
            var hostCpu = Process.GetCurrentProcess().TotalProcessorTime - host0;
            var workerCpu = workerProcess.TotalProcessorTime - worker0;
            Console.WriteLine($"16 in flight: {n / elapsed.TotalSeconds:0} invocations/s; CPU per invocation: host {hostCpu.TotalMicroseconds / n:0} us, " +
                $"worker {workerCpu.TotalMicroseconds / n:0} us, together {(hostCpu + workerCpu).TotalMicroseconds / n:0} us");
            return 0;
        }
        finally
        {
            worker.Channel.Terminate(TimeSpan.FromSeconds(2));
            await worker.Process.Exited.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    private static async Task RunManyAsync(Func<Task> invoke, int count, int inFlight)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) < count) await invoke();
        }));
    }

    private static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}

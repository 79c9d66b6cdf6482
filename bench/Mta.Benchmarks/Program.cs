using BenchmarkDotNet.Running;

namespace Mta.Benchmarks;

/// <summary>
/// Runs the benchmarks: <c>dotnet run -c Release --project bench/Mta.Benchmarks</c> (BenchmarkDotNet, e.g.
/// <c>--filter *Cleanup*</c>), or <c>… -- rpc-hop --app DIR</c> for the functions host's gRPC hop.
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static Task<int> Main(string[] args) => args is ["rpc-hop", .. var rest]
        ? RpcHopBenchmark.RunAsync(rest)
        : Task.FromResult(BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args) is null ? 1 : 0);
}

using System.Runtime.CompilerServices;

namespace Mta.Tests.Peers;

/// <summary>
/// How the .NET processes a test run starts are run: functions workers, the published ingress, mtactl, the publishes.
/// They live seconds, and start on ReadyToRun code that is already optimised; with call counting on, the runtime
/// recompiled their busiest methods at tier 1 all the same, a fifth to a quarter of the workers' CPU in a run
/// (docs/benchmarks.md, test time). Without it they keep the code they start with. The test process itself is
/// started before this runs and tiers as usual, so the ingress and host code it runs still gets optimised.
/// </summary>
internal static class ChildProcessRuntime
{
#pragma warning disable CA2255 // a test assembly's own start-up, not a library's: every child process it starts inherits this
    [ModuleInitializer]
    internal static void KeepStartupCode() => Environment.SetEnvironmentVariable("DOTNET_TC_CallCounting", "0");
#pragma warning restore CA2255
}

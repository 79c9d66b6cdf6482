using System.Diagnostics;

namespace Mta.Tests.Peers;

/// <summary>
/// One part of the MTA — the ingress or the functions host (cleanup, delivery, bounce) — as an operating-system
/// process of its own, run from its project's build output (same configuration as the tests), so a test can kill
/// it with SIGKILL like a crashed pod.
/// </summary>
public sealed class MtaProcess : PeerProcess
{
    private MtaProcess(IEnumerable<string> args, IReadOnlyDictionary<string, string?> settings)
        : base("dotnet", args, TestEnvironment.RepoRoot, Environment(settings)) { }

    // tests/Mta.Tests/bin/<Configuration>/<framework>/: the other projects build to the same pair of folders.
    private static string BuildOutput(string project)
    {
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        return Path.Combine(TestEnvironment.RepoRoot, project, "bin", framework.Parent!.Name, framework.Name);
    }

    private static Dictionary<string, string?> Environment(IReadOnlyDictionary<string, string?> settings)
    {
        var env = new Dictionary<string, string?>
        {
            ["Logging__LogLevel__Default"] = "Warning",
            ["AzureWebJobs__logging__logLevel__default"] = "Warning",
            ["Logging__LogLevel__Azure.Core"] = "Error",
            ["AzureWebJobs__logging__logLevel__Azure.Core"] = "Error",
        };
        foreach (var (key, value) in settings) env[key.Replace(":", "__")] = value;
        return env;
    }

    /// <summary>Starts the ingress; returns once its SMTP port answers.</summary>
    public static async Task<MtaProcess> StartIngressAsync(int port, IReadOnlyDictionary<string, string?> settings)
    {
        var all = new Dictionary<string, string?>(settings) { ["Ingress:Port"] = port.ToString() };
        var process = new MtaProcess([Path.Combine(BuildOutput("ingress"), "Mta.Ingress.dll")], all);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(60), process.Process);
        return process;
    }

    /// <summary>Starts the local functions host with the app in this test's output.</summary>
    public static MtaProcess StartFunctions(IReadOnlyDictionary<string, string?> settings) =>
        new([Path.Combine(BuildOutput("functions-host"), "Mta.Functions.Host.dll"), "--app-path", BuildOutput("functions")], settings);

    /// <summary>SIGKILL: no shutdown code runs, as when a node dies or the OOM killer strikes.</summary>
    public async Task KillAsync()
    {
        if (Process.HasExited) return;
        Process.Kill();
        await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>Whether the process is still running.</summary>
    public bool Running => !Process.HasExited;
}

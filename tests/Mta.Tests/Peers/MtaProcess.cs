using System.Diagnostics;

namespace Mta.Tests.Peers;

/// <summary>
/// One part of the MTA — the ingress or the functions host (cleanup, delivery, bounce) — as an operating-system
/// process of its own (the ingress as its image ships it, the local host from its build output), so a test can kill
/// it with SIGKILL like a crashed pod.
/// </summary>
public sealed class MtaProcess : PeerProcess
{
    private MtaProcess(IEnumerable<string> args, IReadOnlyDictionary<string, string?> settings)
        : base("dotnet", args, TestEnvironment.RepoRoot, Environment(settings)) { }

    private static Dictionary<string, string?> Environment(IReadOnlyDictionary<string, string?> settings)
    {
        var env = new Dictionary<string, string?>
        {
            ["Logging__LogLevel__Default"] = "Warning",
            ["AzureFunctionsJobHost__logging__logLevel__default"] = "Warning",
            ["Logging__LogLevel__Azure.Core"] = "Error",
            ["AzureFunctionsJobHost__logging__logLevel__Azure.Core"] = "Error",
        };
        foreach (var (key, value) in settings) env[key.Replace(":", "__")] = value;
        return env;
    }

    /// <summary>
    /// Starts the ingress as its image ships it (the ReadyToRun publish, <see cref="PublishedApps"/>); returns once its
    /// SMTP port answers.
    /// </summary>
    public static async Task<MtaProcess> StartIngressAsync(int port, IReadOnlyDictionary<string, string?> settings)
    {
        var all = new Dictionary<string, string?>(settings) { ["Ingress:Port"] = port.ToString() };
        var published = (await PublishedApps.AsInDockerfileAsync("ingress.Dockerfile"))["/out"];
        var process = new MtaProcess([Path.Combine(published, "Mta.Ingress.dll")], all);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(60), process.Process);
        return process;
    }

    /// <summary>
    /// Starts the local functions host, which launches the functions app's worker from <paramref name="app"/>, by default
    /// the app's build output.
    /// </summary>
    public static MtaProcess StartFunctions(IReadOnlyDictionary<string, string?> settings, string? app = null) =>
        new([Path.Combine(TestEnvironment.BuildOutput("functions-host"), "Mta.Functions.Host.dll"), "--app-path", app ?? TestEnvironment.FunctionsApp], settings);

    /// <summary>The exit code, once the process has ended (within <paramref name="timeout"/>).</summary>
    public async Task<int> ExitCodeAsync(TimeSpan timeout)
    {
        await Process.WaitForExitAsync().WaitAsync(timeout);
        return Process.ExitCode;
    }

    /// <summary>SIGKILL to the process and its children (the functions host's worker): no shutdown code runs, as when a pod's node dies.</summary>
    public async Task KillAsync()
    {
        if (Process.HasExited) return;
        Process.Kill(entireProcessTree: true);
        await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>The process's children (the functions host's worker), from /proc.</summary>
    public IReadOnlyList<int> ChildProcessIds()
    {
        var tasks = $"/proc/{Process.Id}/task";
        if (!Directory.Exists(tasks)) return [];
        return Directory.GetDirectories(tasks)
            .Select(t => Path.Combine(t, "children")).Where(File.Exists)
            .SelectMany(f => File.ReadAllText(f).Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(int.Parse).Distinct().ToList();
    }

    /// <summary>Whether the process is still running.</summary>
    public bool Running => !Process.HasExited;
}

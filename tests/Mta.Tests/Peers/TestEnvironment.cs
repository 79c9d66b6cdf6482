using Microsoft.Extensions.Configuration;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit;

namespace Mta.Tests.Peers;

/// <summary>Where things are, free ports, and the rule for missing tools.</summary>
public static class TestEnvironment
{
    /// <summary>The repository root (the folder holding Mta.Functions.sln).</summary>
    public static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Mta.Functions.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }

    /// <summary>
    /// A project's build output in the tests' own configuration and framework: tests/Mta.Tests/bin/&lt;Configuration&gt;/&lt;framework&gt;/
    /// names the pair of folders the other projects build to.
    /// </summary>
    public static string BuildOutput(string project)
    {
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        return Path.Combine(RepoRoot, project, "bin", framework.Parent!.Name, framework.Name);
    }

    /// <summary>The functions app as the worker runs it: its build output, with worker.config.json and functions.metadata.</summary>
    public static string FunctionsApp => BuildOutput("functions");

    /// <summary>True under CI (CI=true), where a missing tool fails the test instead of skipping it.</summary>
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// A TCP port nobody listens on, from below the kernel's ephemeral range. A port the kernel hands out for port 0 is an
    /// ephemeral one, which any outgoing connection (to the shared Azurite, say) may take before the test binds it; these
    /// never are. Handed out in turn, so none repeats within a run.
    /// </summary>
    public static int FreeTcpPort() => FreePort(udp: false);

    private const int FirstPort = 20000, LastPort = 32767; // Linux's ephemeral range starts at 32768
    private static int _nextPort = FirstPort + Random.Shared.Next(LastPort - FirstPort);
    private static readonly Lock PortLock = new();

    private static int FreePort(bool udp)
    {
        lock (PortLock)
        {
            for (var tried = 0; tried <= LastPort - FirstPort; tried++)
            {
                var port = _nextPort;
                _nextPort = port == LastPort ? FirstPort : port + 1;
                if (Bindable(port, SocketType.Stream, ProtocolType.Tcp) && (!udp || Bindable(port, SocketType.Dgram, ProtocolType.Udp)))
                    return port;
            }
        }
        throw new InvalidOperationException($"no free port between {FirstPort} and {LastPort}");
    }

    private static bool Bindable(int port, SocketType type, ProtocolType protocol)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, type, protocol);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// A storage connection for a connection string; the default (the development account) is for unit
    /// tests whose storage clients are built but never contacted (they connect lazily).
    /// </summary>
    public static Mta.Mail.Configuration.StorageConnection Storage(string connectionString = "UseDevelopmentStorage=true")
        => Mta.Mail.Configuration.StorageConnection.From(new ConfigurationBuilder()
            .AddInMemoryCollection([new KeyValuePair<string, string?>("AzureWebJobsStorage", connectionString)]).Build());

    /// <summary>Several distinct free TCP ports.</summary>
    public static int[] FreeTcpPorts(int count) => Enumerable.Range(0, count).Select(_ => FreeTcpPort()).ToArray();

    /// <summary>A port free for UDP and TCP alike (a DNS server binds both).</summary>
    public static int FreeUdpPort() => FreePort(udp: true);

    /// <summary>
    /// The full path of a program, or: skip the test with the reason when run by hand,
    /// fail it under CI (where .ci/run must have installed it).
    /// </summary>
    public static string RequireTool(string name)
    {
        var found = FindOnPath(name);
        if (found is not null) return found;
        var reason = $"{name} is not installed (Debian: see .ci/run)";
        if (InCi) throw new InvalidOperationException(reason + "; under CI a missing interop tool is a failure");
        Skip.If(true, reason);
        return "";
    }

    /// <summary>Finds a program on PATH or in the sbin folders (smtp-sink and dnsmasq live there).</summary>
    public static string? FindOnPath(string name)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Concat(["/usr/sbin", "/usr/local/sbin", "/sbin"]);
        return dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
    }

    /// <summary>Polls until <paramref name="condition"/> holds or the time is up.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (await condition()) return true;
            await Task.Delay(200);
        }
        return await condition();
    }

    /// <summary>Waits until something listens on a TCP port.</summary>
    public static async Task WaitForTcpAsync(int port, TimeSpan timeout, Process? owner = null, IPAddress? address = null)
    {
        address ??= IPAddress.Loopback;
        var ok = await EventuallyAsync(async () =>
        {
            if (owner is { HasExited: true })
                throw new InvalidOperationException($"{owner.StartInfo.FileName} exited with {owner.ExitCode}");
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(address, port);
                return true;
            }
            catch (SocketException) { return false; }
        }, timeout);
        if (!ok) throw new TimeoutException($"nothing listens on {address}:{port} after {timeout}");
    }

    /// <summary>A new empty scratch folder, under this run's own folder.</summary>
    public static string TempFolder(string prefix)
    {
        var path = Path.Combine(RunFolder.Value, prefix + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>
    /// <c>$TMPDIR/mta-tests/run-PID</c>. A run's scratch folders (publishes, data folders, peers' files: about 3 GB)
    /// stay after it, for a look at what a failed test left; the next run's first one removes those of every run that
    /// has ended, in the background, so they do not pile up.
    /// </summary>
    private static readonly Lazy<string> RunFolder = new(() =>
    {
        var root = Path.Combine(Path.GetTempPath(), "mta-tests");
        var run = Path.Combine(root, $"run-{Environment.ProcessId}");
        Directory.CreateDirectory(run);
        var ended = Directory.GetFileSystemEntries(root).Where(entry => entry != run && !IsLiveRun(Path.GetFileName(entry))).ToList();
        _ = Task.Run(() => ended.ForEach(Remove));
        return run;
    });

    private static bool IsLiveRun(string name)
    {
        if (!name.StartsWith("run-", StringComparison.Ordinal) || !int.TryParse(name[4..], out var pid)) return false; // from before run folders
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException) { return false; }
    }

    private static void Remove(string entry)
    {
        try
        {
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            else File.Delete(entry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // another user's, or in use: left
    }
}

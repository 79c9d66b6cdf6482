using System.Diagnostics;
using System.Text;

namespace Mta.Tests.Peers;

/// <summary>A real program the tests talk to (Azurite, dnsmasq, smtp-sink), killed with its children on dispose.</summary>
public class PeerProcess : IAsyncDisposable
{
    private readonly StringBuilder _output = new();

    /// <summary>The running process.</summary>
    public Process Process { get; }

    /// <summary>Starts <paramref name="file"/> with arguments; output is kept for failure messages.</summary>
    public PeerProcess(string file, IEnumerable<string> args, string? workingDirectory = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>()) psi.Environment[key] = value;
        Process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + file);
        Process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        Process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    /// <summary>What the program printed so far.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Stops the program.</summary>
    public virtual async ValueTask DisposeAsync()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
        catch (Exception) { /* already gone */ }
        Process.Dispose();
        GC.SuppressFinalize(this);
    }
}

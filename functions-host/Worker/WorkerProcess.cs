using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// One running worker process: its standard output and error relayed to the host's log line by line (with the
/// functions it serves and its pid, as <c>func start</c> shows a worker's console), the last lines kept for a
/// failure message, and a task that ends when the process does.
/// </summary>
public sealed class WorkerProcess : IDisposable
{
    private const int KeptLines = 40;
    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILogger _logger;
    private readonly string _label;

    private WorkerProcess(Process process, ILogger logger, string label)
    {
        _process = process;
        _logger = logger;
        _label = label;
    }

    /// <summary>The worker's process id.</summary>
    public int Id => _process.Id;

    /// <summary>Ends with the exit code once the process has exited and its output has been read to the end.</summary>
    public Task<int> Exited => _exited.Task;

    /// <summary>The last lines the worker printed, for a failure message.</summary>
    public string Tail { get { lock (_tail) return string.Join(Environment.NewLine, _tail); } }

    /// <summary>Starts the worker. <paramref name="label"/> names what it serves in relayed lines.</summary>
    public static WorkerProcess Start(ProcessStartInfo startInfo, ILogger logger, string label)
    {
        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var worker = new WorkerProcess(process, logger, label);
        process.OutputDataReceived += (_, e) => worker.Relay(e.Data, LogLevel.Information);
        process.ErrorDataReceived += (_, e) => worker.Relay(e.Data, LogLevel.Error);
        process.Exited += (_, _) => _ = worker.CompleteAsync();
        if (!process.Start())
            throw new InvalidOperationException($"cannot start {startInfo.FileName}");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    private void Relay(string? line, LogLevel level)
    {
        if (line is null) return;
        lock (_tail)
        {
            _tail.Enqueue(line);
            if (_tail.Count > KeptLines) _tail.Dequeue();
        }
        _logger.Log(level, "[{Functions} pid {Pid}] {Line}", _label, _process.Id, line);
    }

    private async Task CompleteAsync()
    {
        await _process.WaitForExitAsync(); // after Exited, this also waits for the redirected output to drain
        _exited.TrySetResult(_process.ExitCode);
    }

    /// <summary>SIGKILL, for a worker that does not end when told to.</summary>
    public void Kill()
    {
        try { _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { /* already gone */ }
    }

    /// <inheritdoc />
    public void Dispose() => _process.Dispose();
}

using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Protocol;

namespace Mta.Functions.Host.Worker;

/// <summary>
/// Writes a worker's RpcLog messages to the host's log, each under the category and at the level the worker's logger
/// used, as <c>func start</c> shows them. The isolated worker removes its console logger, so this is the only way the
/// app's log lines reach the console.
/// </summary>
public sealed class RpcLogRelay(ILoggerFactory loggers)
{
    /// <summary>Logs one message.</summary>
    public void Write(RpcLog log)
    {
        var level = Level(log.Level);
        if (level == LogLevel.None) return;
        var logger = loggers.CreateLogger(string.IsNullOrEmpty(log.Category) ? "Function" : log.Category);
        if (!logger.IsEnabled(level)) return;
        var exception = log.Exception is null ? null : new WorkerException(log.Exception);
        logger.Log(level, 0, log.Message, exception, static (message, _) => message);
    }

    /// <summary>RpcLog's levels are ILogger's, in the same order.</summary>
    internal static LogLevel Level(RpcLog.Types.Level level) => level switch
    {
        RpcLog.Types.Level.Trace => LogLevel.Trace,
        RpcLog.Types.Level.Debug => LogLevel.Debug,
        RpcLog.Types.Level.Information => LogLevel.Information,
        RpcLog.Types.Level.Warning => LogLevel.Warning,
        RpcLog.Types.Level.Error => LogLevel.Error,
        RpcLog.Types.Level.Critical => LogLevel.Critical,
        _ => LogLevel.None,
    };
}

/// <summary>An exception thrown in the worker, as the worker reported it (type, message and stack trace as text).</summary>
public sealed class WorkerException(RpcException exception) : Exception(exception.Message)
{
    /// <summary>The exception's type name in the worker.</summary>
    public string Type { get; } = exception.Type;

    /// <inheritdoc />
    public override string? StackTrace { get; } = exception.StackTrace;

    /// <inheritdoc />
    public override string ToString() =>
        (string.IsNullOrEmpty(Type) ? "" : Type + ": ") + Message + (string.IsNullOrEmpty(StackTrace) ? "" : Environment.NewLine + StackTrace);
}

using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Mta.Tests.Peers;

/// <summary>Keeps the MTA's own log lines (categories under <c>Mta.</c>) and every error, so tests can read them as an operator would.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    /// <summary>Every line so far, as "Level Category: message".</summary>
    public IReadOnlyList<string> Lines => _lines.ToList();

    /// <summary>Lines containing all of <paramref name="parts"/>.</summary>
    public IReadOnlyList<string> Matching(params string[] parts) => _lines.Where(l => parts.All(l.Contains)).ToList();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() { }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        // The MTA's own lines from Information up, and anyone's errors (a function that throws).
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error
            || logLevel >= LogLevel.Information && (category.StartsWith("Mta.", StringComparison.Ordinal) || category is "smtpd" or "postscreen");

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) owner._lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}" + (exception is null ? "" : " " + exception));
        }
    }
}

using Microsoft.Extensions.Configuration;

namespace Mta.Functions.Host.Configuration;

/// <summary>
/// What the host needs beyond the queue listener's options: host.json's <c>functions</c> (the allow-list) and
/// <c>functionTimeout</c>, and this host's own settings under <c>FunctionsHost</c> (docs/configuration.md).
/// </summary>
public sealed record FunctionsHostOptions
{
    /// <summary>The Functions host's default for a dedicated plan when host.json sets none.</summary>
    public static readonly TimeSpan DefaultFunctionTimeout = TimeSpan.FromMinutes(30);

    /// <summary>Functions to load and listen for (case-insensitive); empty: all the worker indexes.</summary>
    public IReadOnlyList<string> Functions { get; init; } = [];

    /// <summary>How long one invocation may run before it is cancelled and failed; null: no limit (<c>-1</c>).</summary>
    public TimeSpan? FunctionTimeout { get; init; } = DefaultFunctionTimeout;

    /// <summary>On shutdown, how long invocations in flight may go on before they are cancelled.</summary>
    public TimeSpan ShutdownGracePeriod { get; init; } = TimeSpan.FromSeconds(25);

    /// <summary>From the worker's launch to a finished handshake (connected, initialised, functions loaded).</summary>
    public TimeSpan WorkerStartupTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>First wait before a dead worker is started again; doubled per failed start up to <see cref="MaximalRestartDelay"/>.</summary>
    public TimeSpan MinimalRestartDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait between restarts of a worker that keeps dying.</summary>
    public TimeSpan MaximalRestartDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether <paramref name="name"/> passes the allow-list.</summary>
    public bool Admits(string name) => Functions.Count == 0 || Functions.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Reads the options from the host's configuration; a value that does not parse is an error naming its key.</summary>
    public static FunctionsHostOptions From(IConfiguration config)
    {
        var jobHost = config.GetSection(HostConfiguration.JobHostSection);
        var own = config.GetSection("FunctionsHost");
        var defaults = new FunctionsHostOptions();
        return new FunctionsHostOptions
        {
            Functions = jobHost.GetSection("functions").GetChildren().Select(c => c.Value).OfType<string>().ToList(),
            FunctionTimeout = ParseTimeout(jobHost["functionTimeout"]),
            ShutdownGracePeriod = Duration(own, "ShutdownGracePeriod", defaults.ShutdownGracePeriod),
            WorkerStartupTimeout = Duration(own, "WorkerStartupTimeout", defaults.WorkerStartupTimeout),
            MinimalRestartDelay = Duration(own, "MinimalRestartDelay", defaults.MinimalRestartDelay),
            MaximalRestartDelay = Duration(own, "MaximalRestartDelay", defaults.MaximalRestartDelay),
        };
    }

    /// <summary>host.json's <c>functionTimeout</c>: a time span, or <c>-1</c> for none.</summary>
    internal static TimeSpan? ParseTimeout(string? value) => value switch
    {
        null or "" => DefaultFunctionTimeout,
        "-1" => null,
        _ when TimeSpan.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var t) && t > TimeSpan.Zero => t,
        _ => throw new InvalidDataException($"host.json functionTimeout '{value}' is not a time span (hh:mm:ss) or -1"),
    };

    private static TimeSpan Duration(IConfiguration section, string key, TimeSpan fallback)
    {
        var value = section[key];
        if (string.IsNullOrEmpty(value)) return fallback;
        return TimeSpan.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var t) && t >= TimeSpan.Zero
            ? t : throw new InvalidDataException($"FunctionsHost:{key} '{value}' is not a time span (hh:mm:ss)");
    }
}

using Microsoft.Extensions.Logging;

namespace Mta.Mail.Configuration;

/// <summary>How much a <see cref="ConfigFinding"/> matters: an error stops the start (and fails <c>mtactl config check</c>).</summary>
public enum FindingSeverity
{
    /// <summary>Works, but probably not as meant (logged at start, printed by <c>config check</c>).</summary>
    Warning,

    /// <summary>Cannot work: the start fails and <c>config check</c> exits with 2.</summary>
    Error,
}

/// <summary>
/// One thing a configuration validator found. <see cref="Message"/> is the whole text, the same at start-up and in
/// <c>mtactl config check</c>; <see cref="Setting"/> and <see cref="Postfix"/> let tools and tests pick findings out.
/// </summary>
/// <param name="Severity">Error or warning.</param>
/// <param name="Setting">Our setting, as configured (<c>Mta:HopCountLimit</c>).</param>
/// <param name="Postfix">Postfix's name for it (<c>hopcount_limit</c>), where docs/configuration.md gives one.</param>
/// <param name="Message">What is wrong, naming the setting (and Postfix's name beside it).</param>
public sealed record ConfigFinding(FindingSeverity Severity, string Setting, string? Postfix, string Message)
{
    /// <summary>An error whose message is <c>Setting (postfix_name): detail</c>.</summary>
    public static ConfigFinding Error(string setting, string? postfix, string detail)
        => new(FindingSeverity.Error, setting, postfix, $"{Label(setting, postfix)}: {detail}");

    /// <summary><c>Mta:HopCountLimit (hopcount_limit)</c>, or the setting alone when Postfix has no such name.</summary>
    public static string Label(string setting, string? postfix) => postfix is null ? setting : $"{setting} ({postfix})";

    /// <inheritdoc />
    public override string ToString() => Message;
}

/// <summary>What a process does with findings at start: the effects, apart from the checks that decide them.</summary>
public static class ConfigFindings
{
    /// <summary>
    /// Throws when any finding is an error, every error in one message: a broken setting stops the start, naming
    /// itself, instead of failing later at the first message that needs it.
    /// </summary>
    public static void ThrowOnErrors(IEnumerable<ConfigFinding> findings)
    {
        var errors = findings.Where(f => f.Severity == FindingSeverity.Error).Select(f => f.Message).ToList();
        if (errors.Count == 1) throw new InvalidOperationException(errors[0]);
        if (errors.Count > 1) throw new InvalidOperationException($"{errors.Count} configuration errors: {string.Join("; ", errors)}");
    }

    /// <summary>Logs each warning as <c>warning: message</c>, at every start, so a risky setup is never silent.</summary>
    public static void LogWarnings(IEnumerable<ConfigFinding> findings, ILogger log)
    {
        foreach (var f in findings.Where(f => f.Severity == FindingSeverity.Warning))
            log.LogWarning("warning: {Finding}", f.Message);
    }
}

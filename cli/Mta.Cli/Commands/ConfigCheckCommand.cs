using Mta.Mail.Configuration;
using Spectre.Console.Cli;

namespace Mta.Cli.Commands;

/// <summary>
/// <c>config check</c>: Postfix's <c>postconf -n</c> plus the checks Postfix makes when it starts. Runs the checks the
/// MTA runs at its own start (<see cref="MtaOptionsValidator"/>, and the ingress's <c>IngressOptionsValidator</c>), prints the settings that differ from their defaults,
/// and reports each finding with its setting, Postfix's name for it, and file and line. Exit code 2 on any error.
/// </summary>
public sealed class ConfigCheckCommand : AsyncCommand<CommonSettings>
{
    /// <inheritdoc />
    public override Task<int> ExecuteAsync(CommandContext context, CommonSettings settings, CancellationToken ct)
    {
        var configuration = Services.Configuration(settings);
        var mta = MtaOptionsValidator.Check(configuration);
        var ingress = Mta.Ingress.IngressOptionsValidator.Check(configuration, mta.Options);
        IReadOnlyList<ConfigFinding> findings = [.. mta.Findings, .. ingress.Findings];
        var changed = NonDefault(mta.Options, MtaOptions.Section, () => { var d = new MtaOptions(); d.ApplyDefaults(); return d; })
            .Concat(NonDefault(ingress.Options, Mta.Ingress.IngressOptions.Section, () => { var d = new Mta.Ingress.IngressOptions(); d.ApplyDefaults(); return d; }))
            .ToDictionary();
        if (settings.Json) WriteJson(findings, changed);
        else WriteText(findings, changed);
        return Task.FromResult(ErrorCount(findings) == 0 ? ExitCodes.Ok : ExitCodes.Configuration);
    }

    private static int ErrorCount(IReadOnlyList<ConfigFinding> findings) => findings.Count(f => f.Severity == FindingSeverity.Error);

    // errors stays a list of strings for scripts written against earlier versions; findings has the structure.
    private static void WriteJson(IReadOnlyList<ConfigFinding> findings, Dictionary<string, string> changed) => Output.WriteJson(new
    {
        ok = ErrorCount(findings) == 0,
        errors = findings.Where(f => f.Severity == FindingSeverity.Error).Select(f => f.Message),
        findings = findings.Select(f => new { severity = Severity(f), setting = f.Setting, postfix = f.Postfix, message = f.Message }),
        settings = changed,
    });

    // postconf -n on standard output, the findings on standard error, then the verdict.
    private static void WriteText(IReadOnlyList<ConfigFinding> findings, Dictionary<string, string> changed)
    {
        foreach (var (name, value) in changed) Console.Out.WriteLine($"{name} = {value}");
        foreach (var f in findings) Console.Error.WriteLine($"mtactl: {Severity(f)}: {f.Message}");
        var errors = ErrorCount(findings);
        Console.Out.WriteLine(errors == 0 ? "configuration OK" : $"{errors} error(s)");
    }

    private static string Severity(ConfigFinding f) => f.Severity == FindingSeverity.Error ? "error" : "warning";

    // postconf -n: only what differs from the defaults.
    private static Dictionary<string, string> NonDefault<T>(T options, string section, Func<T> defaults)
    {
        var standard = defaults();
        var result = new Dictionary<string, string>();
        foreach (var p in typeof(T).GetProperties().Where(p => p.CanWrite))
        {
            var value = Show(p.GetValue(options));
            if (value != Show(p.GetValue(standard))) result[$"{section}:{p.Name}"] = value;
        }
        return result;

        static string Show(object? v) => v is System.Collections.IEnumerable list and not string ? string.Join(", ", list.Cast<object>()) : v?.ToString() ?? "";
    }
}

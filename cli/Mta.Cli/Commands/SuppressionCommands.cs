using System.ComponentModel;
using Microsoft.Extensions.DependencyInjection;
using Mta.Mail;
using Mta.Mail.Suppression;
using Spectre.Console.Cli;

namespace Mta.Cli.Commands;

/// <summary>Settings of the suppression commands.</summary>
public class SuppressionSettings : CommonSettings
{
    /// <summary>Whose list; mail without a tenant when not given.</summary>
    [CommandOption("--tenant <TENANT>")]
    [Description("The tenant whose list (the injection token's tenant); mail without a tenant when not given.")]
    public string? Tenant { get; init; }

    internal SuppressionList List() => new ServiceCollection().AddLogging().AddMailPipeline(Services.Configuration(this))
        .BuildServiceProvider().GetRequiredService<SuppressionList>();
}

/// <summary>Settings with an address.</summary>
public sealed class SuppressionAddressSettings : SuppressionSettings
{
    /// <summary>The address.</summary>
    [CommandArgument(0, "<ADDRESS>")]
    public string Address { get; init; } = "";

    /// <summary>Why (add only).</summary>
    [CommandOption("--reason <TEXT>")]
    public string? Reason { get; init; }
}

/// <summary><c>suppression list</c>: every entry, as a table or JSON.</summary>
public sealed class SuppressionListCommand : AsyncCommand<SuppressionSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, SuppressionSettings settings, CancellationToken ct)
    {
        var entries = new List<SuppressionEntry>();
        await foreach (var e in settings.List().ListAsync(settings.Tenant, ct)) entries.Add(e);
        if (settings.Json) Output.WriteJson(entries);
        else if (entries.Count == 0) Output.Line("Suppression list is empty");
        else
            foreach (var e in entries.OrderBy(e => e.Tenant).ThenBy(e => e.Address))
                Output.Line($"{e.Tenant}\t{e.Address}\t{e.Category}\t{e.Added:yyyy-MM-dd HH:mm}\t{(e.Expires is { } x ? x.ToString("yyyy-MM-dd") : "never")}\t{e.Reason}");
        return ExitCodes.Ok;
    }
}

/// <summary><c>suppression add</c>.</summary>
public sealed class SuppressionAddCommand : AsyncCommand<SuppressionAddressSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, SuppressionAddressSettings settings, CancellationToken ct)
    {
        await settings.List().AddAsync(settings.Tenant, settings.Address, "manual", settings.Reason, ct);
        Output.Line($"{settings.Address}: suppressed");
        return ExitCodes.Ok;
    }
}

/// <summary><c>suppression remove</c>.</summary>
public sealed class SuppressionRemoveCommand : AsyncCommand<SuppressionAddressSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, SuppressionAddressSettings settings, CancellationToken ct)
    {
        if (await settings.List().RemoveAsync(settings.Tenant, settings.Address, ct))
        {
            Output.Line($"{settings.Address}: removed");
            return ExitCodes.Ok;
        }
        Console.Error.WriteLine($"mtactl: not suppressed: {settings.Address}");
        return ExitCodes.Usage;
    }
}

/// <summary><c>suppression export</c>: <c>address,category,added,expires,reason</c> lines (CSV) on standard output.</summary>
public sealed class SuppressionExportCommand : AsyncCommand<SuppressionSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, SuppressionSettings settings, CancellationToken ct)
    {
        Console.Out.WriteLine("address,category,added,expires,reason");
        await foreach (var e in settings.List().ListAsync(settings.Tenant ?? SuppressionList.NoTenant, ct))
            Console.Out.WriteLine(string.Join(',', Csv(e.Address), Csv(e.Category), e.Added.ToString("O"), e.Expires?.ToString("O") ?? "", Csv(e.Reason ?? "")));
        return ExitCodes.Ok;
    }

    internal static string Csv(string field) => field.IndexOfAny([',', '"', '\r', '\n']) < 0 ? field : "\"" + field.Replace("\"", "\"\"") + "\"";
}

/// <summary><c>suppression import</c>: an export's lines (or bare addresses, one per line) from standard input or a file.</summary>
public sealed class SuppressionImportCommand : AsyncCommand<SuppressionImportCommand.Settings>
{
    /// <summary>The file.</summary>
    public sealed class Settings : SuppressionSettings
    {
        /// <summary>The file to read; standard input when not given.</summary>
        [CommandArgument(0, "[FILE]")]
        public string? File { get; init; }
    }

    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken ct)
    {
        using var reader = settings.File is null ? Console.In : new StreamReader(settings.File);
        var list = settings.List();
        var (imported, line) = (0, 0);
        while (await reader.ReadLineAsync(ct) is { } text)
        {
            line++;
            if (text.Length == 0 || text.StartsWith("address,", StringComparison.Ordinal) || text[0] == '#') continue;
            var fields = text.Split(',');
            var address = fields[0].Trim();
            if (!address.Contains('@')) throw new ArgumentException($"line {line}: '{Output.Printable(address)}' is not an address");
            var category = fields.Length > 1 && fields[1].Length > 0 ? fields[1] : "manual";
            DateTimeOffset? expires = fields.Length > 3 && DateTimeOffset.TryParse(fields[3], out var x) ? x : null;
            await list.AddAsync(settings.Tenant, address, category, "imported", ct, expires);
            imported++;
        }
        Output.Line($"{imported} address(es) imported");
        return ExitCodes.Ok;
    }
}

using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Delivery.Tls;
using Mta.Mail.Dkim;
using Mta.Mail.Rewriting;
using Mta.Mail.Routing;
using Mta.Mail.Shaping;
using Spectre.Console.Cli;

namespace Mta.Cli.Commands;

/// <summary>
/// <c>config check</c>: Postfix's <c>postconf -n</c> plus the checks Postfix makes when it starts. Binds the <c>Mta</c>
/// settings as the MTA does, loads every map, checks and key file the settings name, prints the settings that differ
/// from their defaults, and reports each error with its file and line. Exit code 2 when anything is wrong.
/// </summary>
public sealed class ConfigCheckCommand : AsyncCommand<CommonSettings>
{
    /// <inheritdoc />
    public override Task<int> ExecuteAsync(CommandContext context, CommonSettings settings, CancellationToken ct)
    {
        var configuration = Services.Configuration(settings);
        var errors = new List<string>();
        var options = new MtaOptions();
        try { configuration.GetSection(MtaOptions.Section).Bind(options); }
        catch (InvalidOperationException e) { errors.Add($"{MtaOptions.Section}: {e.Message}"); }
        options.ApplyDefaults();

        void Check(string setting, string? value, Action load)
        {
            if (string.IsNullOrEmpty(value)) return;
            try { load(); }
            catch (FormatException e) { errors.Add(e.Message); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                errors.Add($"{setting}: {value}: {e.Message}");
            }
        }

        try { StorageConnection.From(configuration); }
        catch (InvalidOperationException e) { errors.Add(e.Message); }

        var wrapped = Options.Create(options);
        Check("Mta:TransportMapFile", options.TransportMapFile, () => TransportMap.Load(options.TransportMapFile!));
        Check("Mta:RelayHost", options.RelayHost, () => TransportMap.ParseNextHop("smtp:" + options.RelayHost!.Trim(), "", "Mta:RelayHost"));
        Check("Mta:LocalTransport", options.LocalTransport, () => TransportMap.ParseNextHop(options.LocalTransport, "", "Mta:LocalTransport"));
        Check("Mta:LocalRecipientsFile", options.LocalRecipientsFile, () => File.ReadAllLines(options.LocalRecipientsFile!));
        foreach (var (name, path) in new[]
        {
            ("Mta:CanonicalMapsFile", options.CanonicalMapsFile), ("Mta:SenderCanonicalMapsFile", options.SenderCanonicalMapsFile),
            ("Mta:RecipientCanonicalMapsFile", options.RecipientCanonicalMapsFile), ("Mta:VirtualAliasMapsFile", options.VirtualAliasMapsFile),
        })
            Check(name, path, () => LookupTable.Load(path));
        Check("Mta:HeaderChecksFile", options.HeaderChecksFile, () => ContentChecks.Load(options.HeaderChecksFile, allowIgnore: true));
        Check("Mta:BodyChecksFile", options.BodyChecksFile, () => ContentChecks.Load(options.BodyChecksFile, allowIgnore: false));
        Check("Mta:DkimSigningTable", options.DkimSigningTable, () => _ = new DkimSigning(wrapped, NullLogger<DkimSigning>.Instance));
        Check("Mta:TlsPolicyFile", options.TlsPolicyFile ?? options.TlsSecurityLevel, () => _ = new TlsPolicy(wrapped));
        Check("Mta:ShapingFile", options.ShapingFile, () => ShapingRules.Parse(File.ReadAllLines(options.ShapingFile!), options.ShapingFile!));
        Check("Mta:ShapingThrottlePattern", options.ShapingThrottlePattern, () => _ = new System.Text.RegularExpressions.Regex(options.ShapingThrottlePattern));
        Check("Mta:TlsCaFile", options.TlsCaFile, () =>
        {
            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPemFile(options.TlsCaFile!);
            if (certificates.Count == 0) throw new FormatException($"Mta:TlsCaFile: {options.TlsCaFile}: no certificate in it");
        });
        foreach (var (name, value) in new[]
        {
            ("DestinationRecipientLimit", options.DestinationRecipientLimit), ("HeaderSizeLimit", options.HeaderSizeLimit),
            ("HopCountLimit", options.HopCountLimit), ("BodyChecksSizeLimit", options.BodyChecksSizeLimit),
            ("VirtualAliasExpansionLimit", options.VirtualAliasExpansionLimit), ("VirtualAliasRecursionLimit", options.VirtualAliasRecursionLimit),
            ("MinimalBackoffSeconds", options.MinimalBackoffSeconds), ("MaximalQueueLifetimeSeconds", options.MaximalQueueLifetimeSeconds),
            ("ShapingMaximalPostponeSeconds", options.ShapingMaximalPostponeSeconds),
        })
            if (value <= 0) errors.Add($"Mta:{name}: must be a positive number, not {value}");
        if (options.ShapingSlotLeaseSeconds is < 15 or > 60)
            errors.Add($"Mta:ShapingSlotLeaseSeconds: must be 15 to 60 (Azure's lease range), not {options.ShapingSlotLeaseSeconds}");

        if (settings.Json)
        {
            Output.WriteJson(new { ok = errors.Count == 0, errors, settings = NonDefault(options) });
        }
        else
        {
            foreach (var (name, value) in NonDefault(options)) Console.Out.WriteLine($"{name} = {value}");
            foreach (var e in errors) Console.Error.WriteLine($"mtactl: error: {e}");
            Console.Out.WriteLine(errors.Count == 0 ? "configuration OK" : $"{errors.Count} error(s)");
        }
        return Task.FromResult(errors.Count == 0 ? ExitCodes.Ok : ExitCodes.Configuration);
    }

    // postconf -n: only what differs from the defaults.
    private static Dictionary<string, string> NonDefault(MtaOptions options)
    {
        var defaults = new MtaOptions();
        defaults.ApplyDefaults();
        var result = new Dictionary<string, string>();
        foreach (var p in typeof(MtaOptions).GetProperties().Where(p => p.CanWrite))
        {
            var value = Show(p.GetValue(options));
            if (value != Show(p.GetValue(defaults))) result[$"{MtaOptions.Section}:{p.Name}"] = value;
        }
        return result;

        static string Show(object? v) => v is System.Collections.IEnumerable list and not string ? string.Join(", ", list.Cast<object>()) : v?.ToString() ?? "";
    }
}

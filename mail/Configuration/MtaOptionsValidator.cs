using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mta.Mail.Cleanup;
using Mta.Mail.Delivery.Tls;
using Mta.Mail.Dkim;
using Mta.Mail.Rewriting;
using Mta.Mail.Routing;
using Mta.Mail.Shaping;

namespace Mta.Mail.Configuration;

/// <summary>The <c>Mta</c> options as bound, and what <see cref="MtaOptionsValidator"/> found in them.</summary>
/// <param name="Options">The options, bound and with list defaults filled in, as the MTA sees them.</param>
/// <param name="Findings">Errors and warnings, in the order of the settings checked.</param>
public sealed record MtaConfiguration(MtaOptions Options, IReadOnlyList<ConfigFinding> Findings);

/// <summary>
/// The one check of the <c>Mta</c> settings (and the storage connection), for the ingress's and the functions' start
/// and for <c>mtactl config check</c> alike, so that the tool passes exactly what starts. Postfix checks its
/// configuration the same way when it starts (and in <c>postfix check</c>). Loads every map, check table and key file a
/// setting names, so a file's error comes with its file and line; writes nothing.
/// </summary>
public static class MtaOptionsValidator
{
    // Settings that must be above zero: each one divides, bounds a loop or sizes a buffer.
    private static readonly (string Name, string? Postfix, Func<MtaOptions, int> Value)[] Positive =
    [
        ("DestinationRecipientLimit", "default_destination_recipient_limit", o => o.DestinationRecipientLimit),
        ("HeaderSizeLimit", "header_size_limit", o => o.HeaderSizeLimit),
        ("HopCountLimit", "hopcount_limit", o => o.HopCountLimit),
        ("BodyChecksSizeLimit", "body_checks_size_limit", o => o.BodyChecksSizeLimit),
        ("VirtualAliasExpansionLimit", "virtual_alias_expansion_limit", o => o.VirtualAliasExpansionLimit),
        ("VirtualAliasRecursionLimit", "virtual_alias_recursion_limit", o => o.VirtualAliasRecursionLimit),
        ("MinimalBackoffSeconds", "minimal_backoff_time", o => o.MinimalBackoffSeconds),
        ("MaximalQueueLifetimeSeconds", "maximal_queue_lifetime", o => o.MaximalQueueLifetimeSeconds),
        ("ShapingMaximalPostponeSeconds", null, o => o.ShapingMaximalPostponeSeconds),
    ];

    /// <summary>Every setting this validator checks, with Postfix's name where it has one (docs/configuration.md lists them all).</summary>
    public static IReadOnlyDictionary<string, string?> Settings { get; } = new Dictionary<string, string?>
    {
        [StorageConnection.SettingName] = null,
        ["Mta:TransportMapFile"] = "transport_maps", ["Mta:RelayHost"] = "relayhost", ["Mta:LocalTransport"] = "local_transport",
        ["Mta:LocalRecipientsFile"] = "local_recipient_maps", ["Mta:CanonicalMapsFile"] = "canonical_maps",
        ["Mta:SenderCanonicalMapsFile"] = "sender_canonical_maps", ["Mta:RecipientCanonicalMapsFile"] = "recipient_canonical_maps",
        ["Mta:VirtualAliasMapsFile"] = "virtual_alias_maps", ["Mta:HeaderChecksFile"] = "header_checks",
        ["Mta:BodyChecksFile"] = "body_checks", ["Mta:DkimSigningTable"] = null, ["Mta:TlsSecurityLevel"] = "smtp_tls_security_level",
        ["Mta:TlsPolicyFile"] = "smtp_tls_policy_maps", ["Mta:TlsCaFile"] = "smtp_tls_CAfile", ["Mta:ShapingFile"] = null,
        ["Mta:ShapingThrottlePattern"] = null, ["Mta:ShapingSlotLeaseSeconds"] = null,
        ["Mta:SmtpSaslPasswordMapsFile"] = "smtp_sasl_password_maps", ["Mta:SmtpSaslMechanismFilter"] = "smtp_sasl_mechanism_filter",
        ["Mta:SmtpSaslPlaintextNextHops"] = null, ["Mta:SenderDependentRelayHostMapsFile"] = "sender_dependent_relayhost_maps",
        ["Mta:BounceClassificationFile"] = null, ["Mta:WebhooksFile"] = null, ["Mta:SuppressionLifetimes"] = null,
    }.Concat(Positive.Select(p => KeyValuePair.Create($"{MtaOptions.Section}:{p.Name}", p.Postfix))).ToDictionary();

    /// <summary>
    /// Binds the <c>Mta</c> section as <see cref="PipelineServices.AddMailPipeline"/> does and checks it, with the storage
    /// connection: what <c>config check</c> prints and what stops a start.
    /// </summary>
    public static MtaConfiguration Check(IConfiguration configuration)
    {
        var findings = new List<ConfigFinding>();
        var options = new MtaOptions();
        try { configuration.GetSection(MtaOptions.Section).Bind(options); }
        catch (InvalidOperationException e) { findings.Add(ConfigFinding.Error(MtaOptions.Section, null, e.Message)); }
        options.ApplyDefaults();
        try { StorageConnection.From(configuration); }
        catch (InvalidOperationException e) { findings.Add(new ConfigFinding(FindingSeverity.Error, StorageConnection.SettingName, null, e.Message)); }
        findings.AddRange(Validate(options));
        return new MtaConfiguration(options, findings);
    }

    /// <summary>Checks bound options: their values, then every file they name.</summary>
    public static IReadOnlyList<ConfigFinding> Validate(MtaOptions options) => [.. Files(options), .. Values(options)];

    private static IEnumerable<ConfigFinding> Values(MtaOptions options)
    {
        foreach (var (name, postfix, value) in Positive)
            if (value(options) <= 0)
                yield return ConfigFinding.Error($"{MtaOptions.Section}:{name}", postfix, $"must be a positive number, not {value(options)}");
        if (options.ShapingSlotLeaseSeconds is < 15 or > 60)
            yield return ConfigFinding.Error("Mta:ShapingSlotLeaseSeconds", null,
                $"must be 15 to 60 (Azure's lease range), not {options.ShapingSlotLeaseSeconds}");
        foreach (var network in options.InternalNetworks.Where(n => !System.Net.IPNetwork.TryParse(n, out _)))
            yield return ConfigFinding.Error("Mta:InternalNetworks", null, $"'{network}' is not CIDR notation");
        if (!Feedback.VerpAddress.ValidDelimiters(options.VerpDelimiters))
            yield return ConfigFinding.Error("Mta:VerpDelimiters", "default_verp_delimiters", $"must be two different characters allowed in a local part, not '{options.VerpDelimiters}'");
        foreach (var name in options.TagHeaders.Where(n => n.Length == 0 || !n.All(c => c is > ' ' and < (char)127 and not ':')))
            yield return ConfigFinding.Error("Mta:TagHeaders", null, $"'{name}' is not a header field name");
        if (options.TagHeaders.Count > 16) yield return ConfigFinding.Error("Mta:TagHeaders", null, "at most 16 header fields");
        string? domains = null;
        try { Feedback.BounceDomains.Parse(options.BounceDomains); }
        catch (FormatException e) { domains = e.Message; }
        if (domains is not null) yield return ConfigFinding.Error("Mta:BounceDomains", null, domains);
        foreach (var server in options.DnsServers.Where(s => !System.Net.IPEndPoint.TryParse(s, out _)))
            yield return ConfigFinding.Error("Mta:DnsServers", null, $"'{server}' is not an address[:port]");
        // A password that may cross the network in the clear: allowed, but said out loud.
        foreach (var hop in options.SmtpSaslPlaintextNextHops)
            yield return new ConfigFinding(FindingSeverity.Warning, "Mta:SmtpSaslPlaintextNextHops", null,
                $"warning: Mta:SmtpSaslPlaintextNextHops: logins to {hop} may be sent without TLS");
    }

    private static IEnumerable<ConfigFinding?> FileChecks(MtaOptions options)
    {
        var wrapped = Options.Create(options);
        yield return Load("Mta:TransportMapFile", options.TransportMapFile, f => TransportMap.Load(f));
        yield return Load("Mta:RelayHost", options.RelayHost, v => Router.ParseRelayHost(v, "Mta:RelayHost"));
        yield return Load("Mta:SenderDependentRelayHostMapsFile", options.SenderDependentRelayHostMapsFile, f =>
            LookupTable.Parse(File.ReadAllLines(f), f).Select(e => Router.ParseRelayHost(e.Value, $"{f}: {e.Key}")).ToList());
        yield return Load("Mta:LocalTransport", options.LocalTransport, v => TransportMap.ParseNextHop(v, "", "Mta:LocalTransport"));
        yield return Load("Mta:LocalRecipientsFile", options.LocalRecipientsFile, f => File.ReadAllLines(f));
        yield return Load("Mta:CanonicalMapsFile", options.CanonicalMapsFile, f => LookupTable.Load(f));
        yield return Load("Mta:SenderCanonicalMapsFile", options.SenderCanonicalMapsFile, f => LookupTable.Load(f));
        yield return Load("Mta:RecipientCanonicalMapsFile", options.RecipientCanonicalMapsFile, f => LookupTable.Load(f));
        yield return Load("Mta:VirtualAliasMapsFile", options.VirtualAliasMapsFile, f => LookupTable.Load(f));
        yield return Load("Mta:HeaderChecksFile", options.HeaderChecksFile, f => ContentChecks.Load(f, allowIgnore: true));
        yield return Load("Mta:BodyChecksFile", options.BodyChecksFile, f => ContentChecks.Load(f, allowIgnore: false));
        yield return Load("Mta:BounceClassificationFile", options.BounceClassificationFile, f => Classification.BounceClassifier.Load(f).Classify(""));
        yield return Load("Mta:WebhooksFile", options.WebhooksFile, f => Events.WebhookTargets.Load(f).For(null) ?? new object());
        yield return Load("Mta:SuppressionLifetimes", options.SuppressionLifetimes, Suppression.SuppressionList.ParseLifetimes);
        yield return Load("Mta:DkimSigningTable", options.DkimSigningTable, _ => new DkimSigning(wrapped, NullLogger<DkimSigning>.Instance));
        yield return Load("Mta:TlsSecurityLevel", options.TlsSecurityLevel, v => TlsPolicy.ParseLevel(v, "Mta:TlsSecurityLevel"));
        yield return Load("Mta:TlsPolicyFile", options.TlsPolicyFile, f => TlsPolicy.FromLines(File.ReadAllLines(f), f));
        yield return Load("Mta:TlsCaFile", options.TlsCaFile, LoadCertificates);
        yield return Load("Mta:ShapingFile", options.ShapingFile, f => ShapingRules.Parse(File.ReadAllLines(f), f));
        yield return Load("Mta:ShapingThrottlePattern", options.ShapingThrottlePattern, v => new Regex(v));
        yield return Load("Mta:SmtpSaslPasswordMapsFile", options.SmtpSaslPasswordMapsFile,
            f => Delivery.Sasl.SaslPasswordMap.Parse(File.ReadAllLines(f), f));
        var unknown = options.SmtpSaslMechanismFilter.Where(m => !Delivery.OutboundSmtpConnection.Mechanisms.Contains(m, StringComparer.OrdinalIgnoreCase));
        yield return Load("Mta:SmtpSaslMechanismFilter", string.Join(",", unknown),
            v => throw new FormatException($"unknown mechanism {v}: PLAIN, LOGIN or XOAUTH2"));
    }

    private static IEnumerable<ConfigFinding> Files(MtaOptions options) => FileChecks(options).OfType<ConfigFinding>();

    // Runs the loader the MTA itself uses for the setting, so the check and the start cannot disagree on what parses.
    private static ConfigFinding? Load(string setting, string? value, Func<string, object> load)
    {
        if (string.IsNullOrEmpty(value)) return null;
        var postfix = Settings[setting];
        try
        {
            load(value);
            return null;
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            // Parsers that know the setting name it themselves; the label is said once.
            var detail = e.Message.StartsWith(setting + ": ", StringComparison.Ordinal) ? e.Message[(setting.Length + 2)..] : e.Message;
            return ConfigFinding.Error(setting, postfix, detail);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            return ConfigFinding.Error(setting, postfix, $"{value}: {e.Message}");
        }
    }

    private static object LoadCertificates(string file)
    {
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPemFile(file);
        return certificates.Count > 0 ? certificates : throw new FormatException($"{file}: no certificate in it");
    }
}

using Microsoft.Extensions.Configuration;
using Mta.Mail.Configuration;

namespace Mta.Ingress;

/// <summary>The <c>Ingress</c> options as bound, and what <see cref="IngressOptionsValidator"/> found in them.</summary>
/// <param name="Options">The options, bound and with list defaults filled in.</param>
/// <param name="Findings">Errors and warnings about the ingress settings (the <c>Mta</c> ones are <see cref="MtaOptionsValidator"/>'s).</param>
public sealed record IngressConfiguration(IngressOptions Options, IReadOnlyList<ConfigFinding> Findings);

/// <summary>
/// The check of the <c>Ingress</c> settings the ingress runs at start and <c>mtactl config check</c> runs (it compiles
/// this file and <see cref="IngressOptions"/> in), beside <see cref="MtaOptionsValidator"/>: values no
/// listener can work with are errors; settings that accept mail the system will have to bounce are warnings, as
/// Postfix warns when it starts without its recipient tables.
/// </summary>
public static class IngressOptionsValidator
{
    /// <summary>Binds the <c>Ingress</c> section as the ingress does and checks it against the <c>Mta</c> options.</summary>
    public static IngressConfiguration Check(IConfiguration configuration, MtaOptions mta)
    {
        var findings = new List<ConfigFinding>();
        var options = new IngressOptions();
        try { configuration.GetSection(IngressOptions.Section).Bind(options); }
        catch (InvalidOperationException e) { findings.Add(ConfigFinding.Error(IngressOptions.Section, null, e.Message)); }
        options.ApplyDefaults();
        findings.AddRange(Validate(options, mta));
        return new IngressConfiguration(options, findings);
    }

    /// <summary>Checks bound options: errors first, then warnings.</summary>
    public static IReadOnlyList<ConfigFinding> Validate(IngressOptions ingress, MtaOptions mta) => [.. Errors(ingress), .. Warnings(ingress, mta)];

    private static IEnumerable<ConfigFinding> Errors(IngressOptions o)
    {
        if (o.UnverifiedRecipientRejectCode is not (450 or 550))
            yield return ConfigFinding.Error("Ingress:UnverifiedRecipientRejectCode", "unverified_recipient_reject_code",
                $"{o.UnverifiedRecipientRejectCode} is neither 450 nor 550");
        // The session keeps only the message's first HeadSize octets; a larger header block could not be parsed.
        if (o.HeaderBlockSizeLimit is <= 0 or > IngressOptions.HeadSize)
            yield return ConfigFinding.Error("Ingress:HeaderBlockSizeLimit", null, $"{o.HeaderBlockSizeLimit} is not between 1 and {IngressOptions.HeadSize}");
        if (o.HeaderFieldLimit <= 0)
            yield return ConfigFinding.Error("Ingress:HeaderFieldLimit", null, $"{o.HeaderFieldLimit} is not a positive number");
        foreach (var network in o.TrustedNetworks.Where(n => !System.Net.IPNetwork.TryParse(n, out _)))
            yield return ConfigFinding.Error("Ingress:TrustedNetworks", "mynetworks", $"'{network}' is not CIDR notation");
        if (o.ClientIPv4PrefixLength is < 1 or > 32)
            yield return ConfigFinding.Error("Ingress:ClientIPv4PrefixLength", "smtpd_client_ipv4_prefix_length", $"{o.ClientIPv4PrefixLength} is not between 1 and 32");
        if (o.ClientIPv6PrefixLength is < 1 or > 128)
            yield return ConfigFinding.Error("Ingress:ClientIPv6PrefixLength", "smtpd_client_ipv6_prefix_length", $"{o.ClientIPv6PrefixLength} is not between 1 and 128");
        if (o.ClientRateWindowSeconds <= 0)
            yield return ConfigFinding.Error("Ingress:ClientRateWindowSeconds", "anvil_rate_time_unit", $"{o.ClientRateWindowSeconds} is not a positive number of seconds");
        foreach (var (name, postfix, value) in new[]
                 {
                     ("ConnectionRatePerClient", "smtpd_client_connection_rate_limit", o.ConnectionRatePerClient),
                     ("MessageRatePerClient", "smtpd_client_message_rate_limit", o.MessageRatePerClient),
                     ("RecipientRatePerClient", "smtpd_client_recipient_rate_limit", o.RecipientRatePerClient),
                     ("AuthRatePerClient", "smtpd_client_auth_rate_limit", o.AuthRatePerClient),
                 }.Where(r => r.Item3 < 0))
            yield return ConfigFinding.Error($"Ingress:{name}", postfix, $"{value} is negative (0 is no limit)");
        foreach (var finding in Screening.PostscreenSettings.Problems(o))
            yield return finding;
        foreach (var finding in UpstreamProxy.UpstreamProxySettings.Problems(o))
            yield return finding;
        if (o.BareLineEndings is not ("reject" or "normalize"))
            yield return ConfigFinding.Error("Ingress:BareLineEndings", "smtpd_forbid_bare_newline", $"'{o.BareLineEndings}' is not reject or normalize");
        if (MilterProblem(o) is { } milters)
            yield return ConfigFinding.Error("Ingress:Milters", "smtpd_milters", milters);
        if (o.InjectionPort > 0 && string.IsNullOrEmpty(o.InjectionTokensFile))
            yield return ConfigFinding.Error("Ingress:InjectionTokensFile", null, "the injection API (Ingress:InjectionPort) needs its tokens file: no token, no mail");
        if (o.InjectionPort > 0 && string.IsNullOrEmpty(o.TlsCertificateFile) && !o.InjectionPlainHttp)
            yield return ConfigFinding.Error("Ingress:InjectionPort", null,
                "the injection API needs Ingress:TlsCertificateFile (bearer tokens only inside TLS), or Ingress:InjectionPlainHttp behind a TLS terminator");
        if (o.InjectionMaxRecipients is <= 0 or > 65_535)
            yield return ConfigFinding.Error("Ingress:InjectionMaxRecipients", null, $"{o.InjectionMaxRecipients} is not between 1 and 65535 (a request's messages are numbered in four hex digits)");
        foreach (var (name, value) in new[] { ("InjectionKeyLifetimeSeconds", o.InjectionKeyLifetimeSeconds), ("InjectionRateWindowSeconds", o.InjectionRateWindowSeconds),
                     ("InjectionConcurrency", o.InjectionConcurrency) })
            if (value <= 0) yield return ConfigFinding.Error("Ingress:" + name, null, $"{value} is not a positive number");
        foreach (var (name, value) in new[] { ("InjectionRequestRatePerTenant", o.InjectionRequestRatePerTenant), ("InjectionMessageRatePerTenant", o.InjectionMessageRatePerTenant) })
            if (value < 0) yield return ConfigFinding.Error("Ingress:" + name, null, $"{value} is negative");
        if (o.InjectionRequestSizeLimit <= 0)
            yield return ConfigFinding.Error("Ingress:InjectionRequestSizeLimit", null, $"{o.InjectionRequestSizeLimit} is not a positive number");
        // TLS before AUTH, AUTH before mail: a submission port without either would be a relay for anyone.
        if ((o.SubmissionPort > 0 || o.SubmissionsPort > 0)
            && (string.IsNullOrEmpty(o.TlsCertificateFile) || string.IsNullOrEmpty(o.TlsKeyFile) || string.IsNullOrEmpty(o.UsersFile)))
            yield return new ConfigFinding(FindingSeverity.Error, "Ingress:SubmissionPort", null,
                "Ingress: the submission listeners need Ingress:TlsCertificateFile, Ingress:TlsKeyFile and Ingress:UsersFile (TLS before AUTH, AUTH before mail)");
    }

    /// <summary>What is wrong with the milter settings (the list, the default action, a timeout, the protocol), or null.</summary>
    private static string? MilterProblem(IngressOptions o)
    {
        if (o.MilterProtocol is not (2 or 3 or 4 or 6)) return $"Ingress:MilterProtocol {o.MilterProtocol} is not 2, 3, 4 or 6";
        if (Math.Min(o.MilterConnectTimeoutSeconds, Math.Min(o.MilterCommandTimeoutSeconds, o.MilterContentTimeoutSeconds)) <= 0)
            return "the milter timeouts must be more than 0 seconds";
        try
        {
            Milter.MilterEndpoint.ParseList(o.Milters, Milter.MilterEndpoint.Defaults(Milter.MilterEndpoint.ParseAction(o.MilterDefaultAction),
                TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), 6));
            return null;
        }
        catch (FormatException e)
        {
            return e.Message;
        }
    }

    // A class of recipients without a table: every address is accepted at RCPT, and the unknown ones bounce later to
    // senders who may be forged (backscatter). Postfix checks local users by default; here the tables are files that
    // must be mounted.
    private static IEnumerable<ConfigFinding> Warnings(IngressOptions ingress, MtaOptions mta)
    {
        if (string.IsNullOrEmpty(mta.LocalRecipientsFile))
            yield return new ConfigFinding(FindingSeverity.Warning, "Mta:LocalRecipientsFile", "local_recipient_maps",
                "no Mta:LocalRecipientsFile (local_recipient_maps): every user in the local domains is accepted, and mail for unknown ones bounces (backscatter)");
        if (!string.IsNullOrEmpty(ingress.UsersFile) && string.IsNullOrEmpty(mta.SenderLoginMapsFile))
            yield return new ConfigFinding(FindingSeverity.Warning, "Mta:SenderLoginMapsFile", "smtpd_sender_login_maps",
                "no Mta:SenderLoginMapsFile (smtpd_sender_login_maps): an authenticated user may send as any address, and DKIM signs any domain in the signing table for it");
        if (ingress.RelayDomains.Count > 0 && string.IsNullOrEmpty(ingress.RelayRecipientsFile))
            yield return new ConfigFinding(FindingSeverity.Warning, "Ingress:RelayRecipientsFile", "relay_recipient_maps",
                $"no Ingress:RelayRecipientsFile (relay_recipient_maps): every address in the relay domains {string.Join(", ", ingress.RelayDomains)} is accepted, and mail for unknown ones bounces (backscatter)");
    }
}

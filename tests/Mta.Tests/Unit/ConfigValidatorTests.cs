using Microsoft.Extensions.Configuration;
using Mta.Ingress;
using Mta.Mail.Configuration;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>
/// The one check of the Mta settings, as the start and <c>mtactl config check</c> run it: each finding names our setting,
/// Postfix's beside it, and for a file its line.
/// </summary>
public sealed class ConfigValidatorTests
{
    private static MtaConfiguration Check(params (string Key, string? Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true" };
        foreach (var (key, value) in settings) all[key] = value;
        return MtaOptionsValidator.Check(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }

    [Fact]
    public void The_defaults_have_no_findings()
        => Assert.Empty(Check().Findings);

    [Fact]
    public void A_bad_number_is_an_error_naming_the_setting_and_postfix_s_name()
    {
        var finding = Assert.Single(Check(("Mta:HopCountLimit", "0")).Findings);
        Assert.Equal(FindingSeverity.Error, finding.Severity);
        Assert.Equal("Mta:HopCountLimit", finding.Setting);
        Assert.Equal("hopcount_limit", finding.Postfix);
        Assert.Equal("Mta:HopCountLimit (hopcount_limit): must be a positive number, not 0", finding.Message);
    }

    [Theory]
    [InlineData("Mta:InternalNetworks:0", "10.0.0.0/33", "Mta:InternalNetworks: '10.0.0.0/33' is not CIDR notation")]
    [InlineData("Mta:DnsServers:0", "dns.example:53", "Mta:DnsServers: 'dns.example:53' is not an address[:port]")]
    [InlineData("Ingress:TrustedNetworks:0", "192.0.2.0/24 ", "Ingress:TrustedNetworks (mynetworks): '192.0.2.0/24 ' is not CIDR notation")]
    public void An_address_list_that_does_not_parse_is_an_error_before_any_service_reads_it(string key, string value, string expected)
    {
        var mta = Check((key, value));
        var ingress = IngressOptionsValidator.Check(new ConfigurationBuilder().AddInMemoryCollection(
            new Dictionary<string, string?> { [key] = value }).Build(), mta.Options);
        var finding = Assert.Single([.. mta.Findings, .. ingress.Findings], f => f.Severity == FindingSeverity.Error);
        Assert.Equal(expected, finding.Message);
    }

    [Fact]
    public void A_broken_map_is_an_error_with_its_file_and_line()
    {
        var map = Path.Combine(TestEnvironment.TempFolder("validator"), "virtual");
        File.WriteAllText(map, "a@example.org b@example.org\nbroken\n");
        var finding = Assert.Single(Check(("Mta:VirtualAliasMapsFile", map)).Findings);
        Assert.Equal($"Mta:VirtualAliasMapsFile (virtual_alias_maps): {map}:2: expected 'key value', got 'broken'", finding.Message);
    }

    [Fact]
    public void A_value_a_parser_names_itself_is_labelled_once_and_a_bad_pattern_is_a_finding_not_a_crash()
    {
        var findings = Check(("Mta:TlsSecurityLevel", "maybe"), ("Mta:ShapingThrottlePattern", "(")).Findings;
        Assert.Equal(2, findings.Count);
        Assert.StartsWith("Mta:TlsSecurityLevel (smtp_tls_security_level): unknown TLS level 'maybe'", findings[0].Message);
        Assert.StartsWith("Mta:ShapingThrottlePattern: Invalid pattern", findings[1].Message);
    }

    [Fact]
    public void No_storage_connection_and_an_unbindable_value_are_errors()
    {
        var findings = MtaOptionsValidator.Check(new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Mta:HopCountLimit"] = "many" }).Build()).Findings;
        Assert.Contains(findings, f => f.Setting == "Mta" && f.Message.Contains("HopCountLimit"));
        Assert.Contains(findings, f => f.Setting == "AzureWebJobsStorage" && f.Message.StartsWith("No storage connection"));
    }

    [Fact]
    public void Errors_stop_the_start_in_one_message_and_warnings_do_not()
    {
        ConfigFindings.ThrowOnErrors([new ConfigFinding(FindingSeverity.Warning, "Mta:X", null, "just so")]);
        var e = Assert.Throws<InvalidOperationException>(() => ConfigFindings.ThrowOnErrors(
            [ConfigFinding.Error("Mta:A", "a", "bad"), ConfigFinding.Error("Mta:B", null, "worse")]));
        Assert.Equal("2 configuration errors: Mta:A (a): bad; Mta:B: worse", e.Message);
    }
    [Fact]
    public void The_ingress_check_refuses_values_no_listener_can_use_and_warns_of_open_recipient_classes()
    {
        var ingress = new IngressOptions { BareLineEndings = "lf", UnverifiedRecipientRejectCode = 554, SubmissionPort = 587, RelayDomains = ["relay.test"] };
        ingress.ApplyDefaults();
        var findings = IngressOptionsValidator.Validate(ingress, new MtaOptions());
        Assert.Equal(
        [
            "Ingress:UnverifiedRecipientRejectCode (unverified_recipient_reject_code): 554 is neither 450 nor 550",
            "Ingress:BareLineEndings (smtpd_forbid_bare_newline): 'lf' is not reject or normalize",
            "Ingress: the submission listeners need Ingress:TlsCertificateFile, Ingress:TlsKeyFile and Ingress:UsersFile (TLS before AUTH, AUTH before mail)",
        ], findings.Where(f => f.Severity == FindingSeverity.Error).Select(f => f.Message));
        Assert.Equal(["Mta:LocalRecipientsFile", "Ingress:RelayRecipientsFile"],
            findings.Where(f => f.Severity == FindingSeverity.Warning).Select(f => f.Setting));
    }

    [Fact]
    public void The_sasl_password_map_is_checked_with_line_numbers_and_never_echoes_a_password()
    {
        var file = Path.Combine(TestEnvironment.TempFolder("sasl"), "sasl_passwd");
        File.WriteAllLines(file, ["# comment", "[smtp.example]:587 alice:fine", "[other.example] no-colon-s3cret"]);
        var finding = Assert.Single(Check(("Mta:SmtpSaslPasswordMapsFile", file)).Findings);
        Assert.Equal("smtp_sasl_password_maps", finding.Postfix);
        Assert.Contains($"{file}:3:", finding.Message);
        Assert.DoesNotContain("s3cret", finding.Message);
        var mechanism = Assert.Single(Check(("Mta:SmtpSaslMechanismFilter:0", "CRAM-MD5")).Findings);
        Assert.Contains("unknown mechanism CRAM-MD5", mechanism.Message);
        var plaintext = Assert.Single(Check(("Mta:SmtpSaslPlaintextNextHops:0", "[relay.internal]:25")).Findings);
        Assert.Equal(FindingSeverity.Warning, plaintext.Severity);
    }

    [Fact]
    public void Logins_are_looked_up_by_sender_then_next_hop_in_postfix_order()
    {
        var hop = new Mta.Mail.Contracts.NextHop { Transport = Mta.Mail.Contracts.Transport.Smtp, Host = "smtp.example", Port = 587 };
        Assert.Equal(["app@a.test", "@a.test", "[smtp.example]:587", "[smtp.example]"], Mta.Mail.Delivery.Sasl.SaslPasswordMap.Keys(hop, "app@a.test", true));
        Assert.Equal(["[smtp.example]:587", "[smtp.example]"], Mta.Mail.Delivery.Sasl.SaslPasswordMap.Keys(hop, "app@a.test", false));
        var mx = new Mta.Mail.Contracts.NextHop { Transport = Mta.Mail.Contracts.Transport.Smtp, Host = "example.org", MxLookup = true };
        Assert.Equal(["example.org"], Mta.Mail.Delivery.Sasl.SaslPasswordMap.Keys(mx, "", true));
        Assert.Equal("alice", new Mta.Mail.Delivery.Sasl.SaslAccount("alice", "s3cret").ToString());
        Assert.Equal("PLAIN", Mta.Mail.Delivery.OutboundSmtpConnection.ChooseMechanism("LOGIN PLAIN XOAUTH2", []));
        Assert.Equal("XOAUTH2", Mta.Mail.Delivery.OutboundSmtpConnection.ChooseMechanism("LOGIN PLAIN XOAUTH2", ["xoauth2"]));
        Assert.Null(Mta.Mail.Delivery.OutboundSmtpConnection.ChooseMechanism("CRAM-MD5", []));
    }
}

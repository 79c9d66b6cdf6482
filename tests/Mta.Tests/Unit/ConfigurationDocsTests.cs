using System.Text.RegularExpressions;
using Mta.Ingress;
using Mta.Mail.Configuration;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>
/// docs/configuration.md is the one place every option is documented: each one has a row with its default, and
/// Postfix's name there is the one the validators print beside ours.
/// </summary>
public sealed class ConfigurationDocsTests
{
    // | `Mta:HopCountLimit` | `50` | `hopcount_limit` | meaning |  (\| is a | inside a cell; the storage table has no Postfix column)
    private static readonly Dictionary<string, (string Default, string Postfix)> Rows = File
        .ReadAllLines(Path.Combine(TestEnvironment.RepoRoot, "docs", "configuration.md"))
        .Select(line => Regex.Match(line, @"^\| `([A-Za-z0-9]+(?::[A-Za-z0-9]+)?)` \| ((?:[^|\\]|\\\|)*) \| ((?:[^|\\]|\\\|)*) \|"))
        .Where(m => m.Success)
        .ToDictionary(m => m.Groups[1].Value, m => (m.Groups[2].Value.Trim(), m.Groups[3].Value.Trim()));

    public static TheoryData<string> Options() =>
    [
        .. typeof(MtaOptions).GetProperties().Where(p => p.CanWrite).Select(p => $"{MtaOptions.Section}:{p.Name}"),
        .. typeof(IngressOptions).GetProperties().Where(p => p.CanWrite).Select(p => $"{IngressOptions.Section}:{p.Name}"),
    ];

    [Theory]
    [MemberData(nameof(Options))]
    public void Every_option_has_a_row_with_its_default(string setting)
    {
        Assert.True(Rows.TryGetValue(setting, out var row), $"docs/configuration.md has no row for {setting}");
        Assert.NotEqual("", row.Default);
    }

    [Fact]
    public void Every_setting_the_validators_check_is_documented_with_the_postfix_name_they_print()
    {
        var ingress = new IngressOptions
        {
            BareLineEndings = "lf", UnverifiedRecipientRejectCode = 554, HeaderBlockSizeLimit = 0, HeaderFieldLimit = 0,
            SubmissionPort = 587, UsersFile = "users", RelayDomains = ["relay.test"],
            ClientIPv4PrefixLength = 0, ClientIPv6PrefixLength = 129, UpstreamProxyProtocol = "haproxy", UpstreamProxyTimeoutSeconds = 0,
            UpstreamProxyListeners = ["smtp"], PostscreenGreetAction = "reject", PostscreenDnsblAction = "reject", PostscreenDnsblSites = "x*y",
            PostscreenGreetWaitSeconds = 0, PostscreenGreetTtlSeconds = 0, PostscreenDnsblTimeoutSeconds = 0, PostscreenDnsblMinTtlSeconds = 0,
            PostscreenDnsblMaxTtlSeconds = -1, ClientRateWindowSeconds = 0, ConnectionRatePerClient = -1, MessageRatePerClient = -1,
            RecipientRatePerClient = -1, AuthRatePerClient = -1, InjectionPort = 8025, InjectionMaxRecipients = 0, InjectionRequestSizeLimit = 0,
        };
        var ingressSettings = IngressOptionsValidator.Validate(ingress, new MtaOptions())
            .Where(f => f.Setting != "Ingress:SubmissionPort" || f.Postfix is null) // the finding names all three files
            .Select(f => KeyValuePair.Create(f.Setting, f.Postfix));
        foreach (var (setting, postfix) in MtaOptionsValidator.Settings.Concat(ingressSettings))
        {
            Assert.True(Rows.TryGetValue(setting, out var row), $"docs/configuration.md has no row for {setting}");
            if (postfix is not null) Assert.Contains($"`{postfix}`", row.Postfix);
        }
    }
}

using Mta.Mail.Contracts;
using Mta.Mail.Delivery.Tls;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class TlsPolicyTests
{
    private static readonly TlsPolicy Policy = TlsPolicy.FromLines(
        ["# comment", "example.com verify", ".corp.example encrypt", "[relay.example.net]:587 encrypt", "legacy.example none"], "tls_policy");

    [Theory]
    [InlineData("example.com", true, null, TlsLevel.Verify)]
    [InlineData("mail.corp.example", true, null, TlsLevel.Encrypt)]
    [InlineData("legacy.example", true, null, TlsLevel.None)]
    [InlineData("relay.example.net", false, 587, TlsLevel.Encrypt)]
    public void Listed_destinations_get_their_level(string host, bool mx, int? port, TlsLevel level)
        => Assert.Equal(level, Policy.Find(new NextHop { Transport = Transport.Smtp, Host = host, MxLookup = mx, Port = port }));

    [Theory]
    [InlineData("other.example", true, null)]
    [InlineData("corp.example", true, null)] // ".corp.example" is for subdomains only
    [InlineData("relay.example.net", false, 25)] // a different next hop than [relay.example.net]:587
    public void Unlisted_destinations_get_nothing_so_the_default_applies(string host, bool mx, int? port)
        => Assert.Null(Policy.Find(new NextHop { Transport = Transport.Smtp, Host = host, MxLookup = mx, Port = port }));

    [Theory]
    [InlineData("example.com dane", "unknown TLS level 'dane'")]
    [InlineData("example.com", "expected 'destination level'")]
    public void Errors_name_the_file_and_line(string line, string message)
    {
        var e = Assert.Throws<FormatException>(() => TlsPolicy.FromLines(["", line], "/etc/mta/tls_policy"));
        Assert.StartsWith("/etc/mta/tls_policy:2:", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void An_mta_sts_policy_parses_with_either_line_ending_and_ignores_unknown_fields()
    {
        var p = MtaStsPolicy.Parse("1", "version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\nmx: *.backup.example.com.\nmax_age: 604800\nextension: x\n");
        Assert.Equal(MtaStsMode.Enforce, p.Mode);
        Assert.Equal(["mail.example.com", "*.backup.example.com"], p.Mx);
        Assert.Equal(TimeSpan.FromDays(7), p.MaxAge);
    }

    [Theory]
    [InlineData("mode: enforce\nmx: a.example\nmax_age: 1\n", "version")]
    [InlineData("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "mode 'strict'")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "max_age")]
    [InlineData("version: STSv1\nmode: enforce\nmax_age: 86400\n", "no mx")]
    [InlineData("version: STSv1\nmode enforce\n", "without a key")]
    public void Invalid_mta_sts_policies_are_refused(string body, string message)
        => Assert.Contains(message, Assert.Throws<FormatException>(() => MtaStsPolicy.Parse("1", body)).Message);

    [Theory]
    [InlineData("mail.example.com", true)]
    [InlineData("MAIL.example.com.", true)]
    [InlineData("mx1.backup.example.com", true)]
    [InlineData("backup.example.com", false)] // a wildcard needs one label
    [InlineData("a.b.backup.example.com", false)] // and only one
    [InlineData("mail.example.org", false)]
    public void Mx_hosts_match_the_policy_patterns_as_rfc_8461_says(string host, bool allowed)
    {
        var p = MtaStsPolicy.Parse("1", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.backup.example.com\nmax_age: 86400\n");
        Assert.Equal(allowed, p.Allows(host));
    }
}

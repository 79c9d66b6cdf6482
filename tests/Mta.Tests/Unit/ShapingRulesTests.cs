using System.Net;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Shaping;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class ShapingRulesTests
{
    private static readonly ShapingRules Rules = ShapingRules.Parse(
    [
        "# destination   limits",
        "*               concurrency=10 recovery=2m",
        "example.com     concurrency=5 rate=300/min messages_per_connection=100",
        ".corp.example   recipients=10",
        "[relay.example.net]  concurrency=2",
        "[relay.example.net]:2525  concurrency=3",
        "mx:.google.com  concurrency=7 rate=20/s",
        "mx:mx.single.example  rate=0.5/s",
    ], "shaping");

    private static NextHop Mx(string domain) => new() { Transport = Transport.Smtp, Host = domain, MxLookup = true };

    private static MailHost[] Hosts(params string[] names) => names.Select(n => new MailHost(n, IPAddress.Loopback)).ToArray();

    [Fact]
    public void A_listed_domain_gets_its_limits_and_the_star_line_fills_the_rest()
    {
        var site = Rules.SiteFor(Mx("example.com"), Hosts("mx2.example.com", "mx1.example.com"));
        Assert.Equal(new DestinationLimits(5, 100, 5, 50, TimeSpan.FromMinutes(2)), site.Limits);
        Assert.Equal("mx1.example.com,mx2.example.com", site.Name);
    }

    [Fact]
    public void Domains_with_the_same_mx_hosts_are_one_site()
    {
        var a = Rules.SiteFor(Mx("one.example"), Hosts("mx.hosting.example", "mx2.hosting.example"));
        var b = Rules.SiteFor(Mx("two.example"), Hosts("MX2.hosting.example.", "mx.hosting.example"));
        Assert.Equal(a.Key, b.Key);
        Assert.Equal(10, a.Limits.Concurrency); // the * line
        Assert.NotEqual(a.Key, Rules.SiteFor(Mx("three.example"), Hosts("mx.other.example")).Key);
    }

    [Fact]
    public void A_provider_line_matches_by_mx_host_and_every_domain_there_shares_it()
    {
        var gmail = Rules.SiteFor(Mx("gmail.com"), Hosts("gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"));
        var hosted = Rules.SiteFor(Mx("company.example"), Hosts("aspmx.l.google.com"));
        Assert.Equal("mx:.google.com", gmail.Name);
        Assert.Equal(gmail.Key, hosted.Key);
        Assert.Equal(7, gmail.Limits.Concurrency);
        Assert.Equal(20, gmail.Limits.MessagesPerSecond);
        Assert.Equal(0.5, Rules.SiteFor(Mx("single.example"), Hosts("mx.single.example")).Limits.MessagesPerSecond);
        Assert.Equal("mx1.single.example", Rules.SiteFor(Mx("x.example"), Hosts("mx1.single.example")).Name); // exact name, not a suffix
    }

    [Fact]
    public void Subdomain_entries_bracketed_relays_and_the_built_in_defaults()
    {
        Assert.Equal(10, Rules.SiteFor(Mx("mail.corp.example"), Hosts("mx.corp.example")).Limits.RecipientsPerTransaction);
        Assert.Equal(50, Rules.SiteFor(Mx("corp.example"), Hosts("mx.corp.example")).Limits.RecipientsPerTransaction);
        var relay = Rules.SiteFor(new NextHop { Transport = Transport.Smtp, Host = "relay.example.net", Port = 587 }, Hosts("relay.example.net"));
        Assert.Equal(2, relay.Limits.Concurrency);
        Assert.Equal("[relay.example.net]:587", relay.Name);
        var port2525 = Rules.SiteFor(new NextHop { Transport = Transport.Smtp, Host = "relay.example.net", Port = 2525 }, Hosts("relay.example.net"));
        Assert.Equal(3, port2525.Limits.Concurrency); // the line for that port wins
        Assert.NotEqual(relay.Key, port2525.Key);
        Assert.Equal(2, Rules.SiteFor(new NextHop { Transport = Transport.Smtp, Host = "relay.example.net" }, Hosts("relay.example.net")).Limits.Concurrency);
        Assert.Equal(DestinationLimits.Default, ShapingRules.Empty.SiteFor(Mx("any.example"), Hosts("mx.any.example")).Limits);
        Assert.Equal(20, DestinationLimits.Default.Concurrency);
        Assert.Equal(50, DestinationLimits.Default.RecipientsPerTransaction);
    }

    [Theory]
    [InlineData("example.com concurrency=0", "concurrency must be at least 1")]
    [InlineData("example.com rate=5/day", "rate=5/day is not N/s, N/min or N/h")]
    [InlineData("example.com speed=5", "unknown limit 'speed'")]
    [InlineData("example.com", "expected 'destination name=value ...'")]
    [InlineData("example.com recovery=soon", "recovery=soon is not a duration")]
    [InlineData("mx: concurrency=1", "'mx:' needs a host name")]
    public void Errors_name_the_file_and_line(string line, string message)
    {
        var e = Assert.Throws<FormatException>(() => ShapingRules.Parse(["# limits", line], "/etc/mta/shaping"));
        Assert.StartsWith("/etc/mta/shaping:2:", e.Message);
        Assert.Contains(message, e.Message);
    }
}

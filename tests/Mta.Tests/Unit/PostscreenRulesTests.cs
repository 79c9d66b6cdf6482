using System.Net;
using Mta.Ingress;
using Mta.Ingress.Screening;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>postscreen's DNSBL site syntax, scoring and verdicts, with its defaults and log words.</summary>
public sealed class PostscreenRulesTests
{
    private static readonly IPAddress Client = IPAddress.Parse("192.0.2.7");
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 0, 0, 0, TimeSpan.Zero);

    private static PostscreenSettings Settings(string sites = "zen.test=127.0.0.[2..11]*3", string greet = "ignore", string dnsbl = "enforce", int allowlist = 0)
        => PostscreenSettings.From(new IngressOptions
        {
            Postscreen = true, PostscreenDnsblSites = sites, PostscreenGreetAction = greet, PostscreenDnsblAction = dnsbl,
            PostscreenDnsblAllowlistThreshold = allowlist,
        });

    private static IReadOnlyList<IPAddress> Replies(params string[] addresses) => addresses.Select(IPAddress.Parse).ToList();

    [Theory]
    [InlineData("zen.test", "127.0.0.2", true)]
    [InlineData("zen.test", "127.255.255.255", true)] // no filter: any reply
    [InlineData("zen.test=127.0.0.[2..11]", "127.0.0.11", true)]
    [InlineData("zen.test=127.0.0.[2..11]", "127.0.0.12", false)]
    [InlineData("zen.test=127.0.0.[2..11]", "127.0.1.2", false)]
    [InlineData("wl.test=127.0.[0..255].[1;3;5..7]", "127.0.9.6", true)]
    [InlineData("wl.test=127.0.[0..255].[1;3;5..7]", "127.0.9.4", false)]
    [InlineData("bl.test=127.0.0.2*2", "127.0.0.2", true)]
    public void Filters_match_octet_by_octet(string entry, string reply, bool matches)
        => Assert.Equal(matches, DnsblSite.Parse(entry).Matches(Replies(reply)));

    [Theory]
    [InlineData("zen.test", 1)]
    [InlineData("zen.test*3", 3)]
    [InlineData("list.dnswl.test=127.0.[0..255].[1..3]*-2", -2)]
    public void Weights_default_to_one_and_may_be_negative(string entry, int weight) => Assert.Equal(weight, DnsblSite.Parse(entry).Weight);

    [Theory]
    [InlineData("zen.test*x")]
    [InlineData("zen.test=127.0.0")]
    [InlineData("zen.test=127.0.0.256")]
    [InlineData("zen.test=127.0.0.[11..2]")]
    [InlineData("zen.test=127.0.0.[2..]")]
    [InlineData("=127.0.0.2")]
    [InlineData("zen_test!")]
    public void Malformed_entries_are_refused_with_the_entry_named(string entry)
        => Assert.Contains(entry, Assert.Throws<FormatException>(() => DnsblSite.Parse(entry)).Message);

    [Fact]
    public void Each_entry_counts_once_and_the_largest_contribution_names_the_list()
    {
        var sites = DnsblSite.ParseList("zen.test=127.0.0.[2..11]*3, zen.test=127.0.0.[10..11]*1 bl.test*2, wl.test*-5");
        var answers = new Dictionary<string, IReadOnlyList<IPAddress>>
        {
            ["zen.test"] = Replies("127.0.0.2", "127.0.0.4", "127.0.0.10"), // both zen entries match, each once
            ["bl.test"] = Replies("127.0.0.2"),
        };
        Assert.Equal((6, "zen.test"), DnsblLookup.Score(sites, answers));
        answers["wl.test"] = Replies("127.0.0.2");
        Assert.Equal((1, "zen.test"), DnsblLookup.Score(sites, answers));
        Assert.Equal((0, null), DnsblLookup.Score(sites, new Dictionary<string, IReadOnlyList<IPAddress>>()));
    }

    [Theory]
    [InlineData("192.0.2.7", "7.2.0.192.zen.test")]
    [InlineData("::ffff:192.0.2.7", "7.2.0.192.zen.test")]
    [InlineData("2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test")]
    public void Lists_are_asked_under_the_reversed_address(string address, string name)
        => Assert.Equal(name, DnsblLookup.ReverseName(IPAddress.Parse(address), "zen.test"));

    [Fact]
    public void A_listed_client_gets_postscreens_reply_for_its_action()
    {
        var facts = new ScreenFacts(Client, false, 3, "zen.test", TimeSpan.FromMinutes(5));
        var enforce = ScreenRules.Decide(Settings(dnsbl: "enforce"), facts, Now);
        Assert.Equal((ScreenAction.Enforce, "550 5.7.1 Service unavailable; client [192.0.2.7] blocked using zen.test"), (enforce.Action, enforce.Reply));
        Assert.Null(enforce.PassUntil);
        var drop = ScreenRules.Decide(Settings(dnsbl: "drop"), facts, Now);
        Assert.Equal((ScreenAction.Drop, "521 5.7.1 Service unavailable; client [192.0.2.7] blocked using zen.test"), (drop.Action, drop.Reply));
        var ignore = ScreenRules.Decide(Settings(dnsbl: "ignore"), facts, Now);
        Assert.Equal((ScreenAction.Ignore, null, null), (ignore.Action, ignore.Reply, ignore.PassUntil)); // tested again next time
        Assert.Equal(["DNSBL rank 3"], ignore.Findings);
    }

    [Fact]
    public void Talking_early_fails_the_greeting_test_and_the_worse_action_wins()
    {
        var facts = new ScreenFacts(Client, true, 0, null, TimeSpan.FromMinutes(5));
        Assert.Equal("550 5.5.1 Protocol error", ScreenRules.Decide(Settings(greet: "enforce"), facts, Now).Reply);
        Assert.Null(ScreenRules.Decide(Settings(greet: "ignore"), facts, Now).PassUntil);
        var both = ScreenRules.Decide(Settings(greet: "enforce", dnsbl: "drop"), facts with { Score = 3, ListedBy = "zen.test" }, Now);
        Assert.Equal(ScreenAction.Drop, both.Action);
        Assert.StartsWith("521 5.7.1", both.Reply);
    }

    [Fact]
    public void A_pass_lasts_as_long_as_the_shortest_test_and_the_dnsbl_answer_within_its_bounds()
    {
        var passed = ScreenRules.Decide(Settings(), new ScreenFacts(Client, false, 0, null, TimeSpan.FromMinutes(5)), Now);
        Assert.Equal(Now + TimeSpan.FromMinutes(5), passed.PassUntil);
        var noLists = ScreenRules.Decide(Settings(sites: ""), new ScreenFacts(Client, false, 0, null, TimeSpan.Zero), Now);
        Assert.Equal(Now + TimeSpan.FromDays(1), noLists.PassUntil); // postscreen_greet_ttl
    }

    [Fact]
    public void The_allowlist_needs_a_negative_threshold()
    {
        Assert.False(ScreenRules.Allowlisted(Settings(allowlist: 0), -5));
        Assert.True(ScreenRules.Allowlisted(Settings(allowlist: -1), -2));
        Assert.False(ScreenRules.Allowlisted(Settings(allowlist: -3), -2));
    }
}

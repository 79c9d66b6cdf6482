using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Mta.Mail;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Routing;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class RoutingTests
{
    [Theory]
    [InlineData("smtp:[127.0.0.1]:2526", "127.0.0.1", 2526, false)]
    [InlineData("smtp:[mail.example.net]", "mail.example.net", null, false)]
    [InlineData("smtp:relay.example.net", "relay.example.net", null, true)]
    [InlineData("smtp:relay.example.net:587", "relay.example.net", 587, true)]
    [InlineData("smtp:", "example.test", null, true)]
    [InlineData("SMTP:[::1]:25", "::1", 25, false)]
    [InlineData("relay:[smarthost.example.net]:587", "smarthost.example.net", 587, false)]
    public void Parses_transport_entries(string value, string host, int? port, bool mx)
    {
        var hop = TransportMap.ParseNextHop(value, "example.test");
        Assert.Equal(Transport.Smtp, hop.Transport);
        Assert.Equal(host, hop.Host);
        Assert.Equal(port, hop.Port);
        Assert.Equal(mx, hop.MxLookup);
    }

    [Theory]
    [InlineData("lmtp:[127.0.0.1]:2424", "127.0.0.1", 2424)]
    [InlineData("lmtp:mailstore.internal", "mailstore.internal", 24)]
    public void Parses_lmtp_entries_without_mx_lookup(string value, string host, int port)
    {
        var hop = TransportMap.ParseNextHop(value, "example.test");
        Assert.Equal(Transport.Lmtp, hop.Transport);
        Assert.Equal(host, hop.Host);
        Assert.Equal(port, hop.Port);
        Assert.False(hop.MxLookup);
    }

    [Fact]
    public void Local_domains_follow_the_local_transport()
    {
        var router = new Router(Options.Create(new MtaOptions { LocalDomains = ["localhost"], LocalTransport = "lmtp:[10.0.0.5]:24" }), TransportMap.Empty);
        Assert.Equal("lmtp:[10.0.0.5]:24", router.Resolve("u@localhost").ToString());
    }

    [Fact]
    public void A_sender_dependent_relay_host_wins_over_the_relay_host_and_loses_to_the_transport_map()
    {
        var file = Path.Combine(Mta.Tests.Peers.TestEnvironment.TempFolder("relays"), "sender_relay");
        File.WriteAllLines(file, ["@shop.test [smtp.provider.test]:587", "vip@shop.test smtps:[vip.provider.test]", "@news.test news-relay.test"]);
        var map = TransportMap.Parse(["mapped.test smtp:[10.0.0.9]:2525"], "transport");
        var router = new Router(Options.Create(new MtaOptions
        {
            LocalDomains = ["localhost"], RelayHost = "[smarthost.test]:25", SenderDependentRelayHostMapsFile = file,
        }), map);
        Assert.Equal("smtp:[smtp.provider.test]:587", router.Resolve("u@far.test", "app@shop.test").ToString());
        Assert.Equal("smtps:[vip.provider.test]:465", router.Resolve("u@far.test", "vip@shop.test").ToString()); // the address before its domain
        Assert.Equal("smtp:news-relay.test", router.Resolve("u@far.test", "a@news.test").ToString());
        Assert.Equal("smtp:[smarthost.test]:25", router.Resolve("u@far.test", "a@other.test").ToString());
        Assert.Equal("smtp:[10.0.0.9]:2525", router.Resolve("u@mapped.test", "app@shop.test").ToString());
        Assert.Equal("local:", router.Resolve("u@localhost", "app@shop.test").ToString());
        Assert.True(router.IsConfigured(router.Resolve("u@far.test", "vip@shop.test")));
        Assert.True(Mta.Mail.Routing.Router.ParseRelayHost("smtps:[smtp.test]", "x").ImplicitTls);
    }

    [Fact]
    public void The_relay_host_takes_what_is_neither_local_nor_mapped()
    {
        var map = TransportMap.Parse(["mapped.test smtp:[10.0.0.9]:2525"], "transport");
        var router = new Router(Options.Create(new MtaOptions { LocalDomains = ["localhost"], RelayHost = "[smarthost.example.net]:587" }), map);
        Assert.Equal("smtp:[smarthost.example.net]:587", router.Resolve("u@elsewhere.test").ToString());
        Assert.Equal("smtp:[10.0.0.9]:2525", router.Resolve("u@mapped.test").ToString());
        Assert.Equal("local:", router.Resolve("u@localhost").ToString());
        var direct = new Router(Options.Create(new MtaOptions { LocalDomains = ["localhost"] }), map);
        Assert.Equal("smtp:elsewhere.test", direct.Resolve("u@elsewhere.test").ToString());
    }

    [Theory]
    [InlineData("example.test noseparator", "has no transport")]
    [InlineData("example.test uucp:host", "unknown transport 'uucp'")]
    [InlineData("example.test smtp:[host", "missing ']'")]
    [InlineData("example.test smtp:[host]:99999", "bad port")]
    [InlineData("example.test", "expected 'domain transport:nexthop'")]
    public void Map_errors_name_the_file_and_line(string line, string message)
    {
        var e = Assert.Throws<FormatException>(() => TransportMap.Parse(["# comment", "", line], "/etc/mta/transport"));
        Assert.StartsWith("/etc/mta/transport:3:", e.Message);
        Assert.Contains(message, e.Message);
    }

    private static Router Router(params string[] mapLines) =>
        new(Options.Create(new MtaOptions { LocalDomains = ["localhost", "Example.ORG"] }), TransportMap.Parse(mapLines));

    [Fact]
    public void Local_domains_then_transport_map_then_mx()
    {
        var router = Router("special.test smtp:[10.0.0.1]:2525");
        Assert.Equal(Transport.Local, router.Resolve("user@example.org.").Transport);
        Assert.Equal(Transport.Local, router.Resolve("user@LOCALHOST").Transport);
        Assert.Equal("smtp:[10.0.0.1]:2525", router.Resolve("a@Special.Test").ToString());
        Assert.Equal("smtp:elsewhere.test", router.Resolve("a@elsewhere.test").ToString());
    }

    [Fact]
    public void Configured_local_domains_replace_the_default()
    {
        static Router Bound(Dictionary<string, string?> settings)
        {
            var config = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
            var services = new ServiceCollection().AddMailPipeline(config).BuildServiceProvider();
            return services.GetRequiredService<Router>();
        }
        var storage = new Dictionary<string, string?> { ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true" };
        Assert.Equal(Transport.Local, Bound(storage).Resolve("u@localhost").Transport);
        var configured = Bound(new(storage) { ["Mta:LocalDomains:0"] = "example.org" });
        Assert.Equal(Transport.Local, configured.Resolve("u@example.org").Transport);
        Assert.Equal(Transport.Smtp, configured.Resolve("u@localhost").Transport);
    }

    [Fact]
    public void Groups_by_next_hop_within_the_recipient_limit()
    {
        var router = Router();
        var rcpts = Enumerable.Range(0, 7).Select(i => $"u{i}@a.test").Concat(["x@b.test", "y@localhost", "u7@A.TEST"]).ToList();
        var groups = router.Group(rcpts, limit: 3).ToList();
        Assert.Equal(["smtp:a.test", "smtp:a.test", "smtp:a.test", "smtp:b.test", "local:"], groups.Select(g => g.Hop.ToString()));
        Assert.Equal([3, 3, 2, 1, 1], groups.Select(g => g.Recipients.Count));
        Assert.Equal(rcpts.Count, groups.Sum(g => g.Recipients.Count));
        Assert.Equal("u7@A.TEST", groups[2].Recipients[1]);
    }

    [Theory]
    [InlineData("x@\u212Aelvin.test", "kelvin.test")]   // KELVIN SIGN: as DNS will see it
    [InlineData("x@B\u00FCcher.Test.", "xn--bcher-kva.test")]
    [InlineData("x@Example.TEST", "example.test")]
    [InlineData("x@[192.0.2.1]", "[192.0.2.1]")]
    [InlineData("x@a\u0378.test", "")]                   // unassigned code point: no domain
    [InlineData("postmaster", "")]
    public void Domains_take_one_form_for_every_decision(string address, string domain)
        => Assert.Equal(domain, Mta.Mail.Routing.Address.DomainOf(address));

    [Fact]
    public void Only_a_non_ascii_domain_is_rewritten_and_only_ascii_letters_fold()
    {
        Assert.Equal("K@Example.test", Mta.Mail.Routing.Address.WithAsciiDomain("K@Example.test"));
        Assert.Equal("j\u00F6rg@xn--bcher-kva.test", Mta.Mail.Routing.Address.WithAsciiDomain("j\u00F6rg@b\u00FCcher.test"));
        Assert.Null(Mta.Mail.Routing.Address.WithAsciiDomain("x@a\u0378.test"));
        var fold = Mta.Mail.Routing.AsciiCaseComparer.Instance;
        Assert.True(fold.Equals("Kate@x.test", "kATE@x.test"));
        Assert.False(fold.Equals("\u212Aate", "kate"));      // ToLowerInvariant would say "kate"
        Assert.False(fold.Equals("\u0131bob", "Ibob"));      // OrdinalIgnoreCase would say equal (dotless i)
        Assert.Equal("\u212Aate", Mta.Mail.Routing.AsciiCaseComparer.Fold("\u212Aate"));
        Assert.Equal("kate", Mta.Mail.Routing.AsciiCaseComparer.Fold("KATE"));
    }
}

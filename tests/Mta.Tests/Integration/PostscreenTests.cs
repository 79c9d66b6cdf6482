using System.Diagnostics;
using System.Net;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// postscreen's defences in the ingress (<c>Ingress:Postscreen</c>), against dnsmasq serving a blocklist (<c>bl.test</c>)
/// and an allowlist (<c>wl.test</c>) for loopback clients: the greeting pause with its <c>220-</c> first line, listed
/// clients refused or dropped with postscreen's replies, allowlisted ones through without the pause, early talkers
/// dropped, and passes remembered across replicas.
/// </summary>
[RunsLong(16)]
public sealed class PostscreenTests
{
    private static readonly IPAddress Listed = IPAddress.Parse("127.0.0.8");       // bl.test 127.0.0.4, in the filter
    private static readonly IPAddress OffFilter = IPAddress.Parse("127.0.0.9");    // bl.test 127.0.0.99, outside it
    private static readonly IPAddress Allowed = IPAddress.Parse("127.0.0.7");      // wl.test 127.0.0.2
    private static readonly IPAddress Talker = IPAddress.Parse("127.0.0.10");      // listed nowhere

    private static Task<Dnsmasq> ListsAsync() => Dnsmasq.StartAsync(
        "--host-record=8.0.0.127.bl.test,127.0.0.4", "--host-record=9.0.0.127.bl.test,127.0.0.99",
        "--host-record=7.0.0.127.wl.test,127.0.0.2");

    private static Dictionary<string, string?> Settings(Dnsmasq dns, string dnsblAction, int greetWait = 2, string greetAction = "drop") => new()
    {
        ["Ingress:Postscreen"] = "true",
        ["Ingress:PostscreenGreetWaitSeconds"] = greetWait.ToString(),
        ["Ingress:PostscreenGreetAction"] = greetAction,
        ["Ingress:PostscreenDnsblSites"] = "bl.test=127.0.0.[2..11]*3, wl.test*-2",
        ["Ingress:PostscreenDnsblAllowlistThreshold"] = "-1",
        ["Ingress:PostscreenDnsblAction"] = dnsblAction,
        ["Ingress:TrustedNetworks:0"] = "10.0.0.0/8", // loopback clients are strangers here
        ["Mta:DnsServers:0"] = dns.Server,
    };

    private static async Task<(RawSmtpClient Client, string Greeting, TimeSpan Took)> ConnectAsync(int port, IPAddress from)
    {
        var clock = Stopwatch.StartNew();
        var (client, greeting) = await RawSmtpClient.ConnectAsync(IPAddress.Loopback, port, from);
        return (client, greeting, clock.Elapsed);
    }

    [Fact]
    public async Task Listed_clients_get_postscreens_refusal_and_clean_ones_pass_once_for_the_ttl()
    {
        await using var dns = await ListsAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, Settings(dns, "enforce", greetAction: "ignore"), functions: false);

        // Listed: the whole pause, then every recipient refused with postscreen's words; tested again next time.
        for (var i = 0; i < 2; i++)
        {
            var (listed, greeting, took) = await ConnectAsync(mta.SmtpPort, Listed);
            await using (listed)
            {
                Assert.Equal("220-mta.test ESMTP\r\n220 mta.test ESMTP", greeting.TrimEnd());
                Assert.True(took >= TimeSpan.FromSeconds(1.9), $"greeting after {took}");
                Assert.StartsWith("250", await listed.CommandAsync("EHLO client.test"));
                Assert.StartsWith("250", await listed.CommandAsync("MAIL FROM:<a@client.test>"));
                Assert.Equal("550 5.7.1 Service unavailable; client [127.0.0.8] blocked using bl.test",
                    (await listed.CommandAsync("RCPT TO:<user@localhost>")).TrimEnd());
            }
        }
        Assert.Equal(2, mta.Log.Matching("DNSBL rank 3 for [127.0.0.8]:").Count);
        Assert.Empty(mta.Log.Matching("PASS", "[127.0.0.8]"));

        // A reply outside the filter does not count: the client passes, and its next connection skips the pause.
        var (clean, first, _) = await ConnectAsync(mta.SmtpPort, OffFilter);
        await using (clean)
        {
            Assert.StartsWith("220-", first);
            Assert.StartsWith("354", await clean.StartDataAsync("a@client.test", "user@localhost"));
            Assert.StartsWith("250", await clean.CommandAsync("Subject: passed\r\n\r\nbody\r\n."));
        }
        Assert.Single(mta.Log.Matching("PASS NEW [127.0.0.9]:"));
        var (again, second, quick) = await ConnectAsync(mta.SmtpPort, OffFilter);
        await using (again) Assert.Equal("220 mta.test ESMTP", second.TrimEnd());
        Assert.True(quick < TimeSpan.FromSeconds(1.8), $"a remembered client waited {quick} (the pause is 2 s)");
        Assert.Single(mta.Log.Matching("PASS OLD [127.0.0.9]:"));
        Assert.Single(await QueuePeek.DeliveryAsync(azurite.ConnectionString));

        // An early talker let through (postscreen_greet_action = ignore) meets the session's own rule: no talking first.
        var (talker, reply) = await RawSmtpClient.ConnectAsync(IPAddress.Loopback, mta.SmtpPort, Talker, "EHLO spambot.test\r\n");
        await using (talker) Assert.Equal("220-mta.test ESMTP\r\n554 5.5.0 Error: SMTP protocol synchronization", reply.TrimEnd());
        Assert.Single(mta.Log.Matching("PREGREET", "[127.0.0.10]:"));
        Assert.Empty(mta.Log.Matching("PASS", "[127.0.0.10]:"));
    }

    [Fact]
    public async Task Allowlisted_clients_skip_the_pause_and_early_talkers_and_listed_ones_are_dropped()
    {
        await using var dns = await ListsAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, Settings(dns, "drop", greetWait: 4), functions: false);

        var (allowed, greeting, took) = await ConnectAsync(mta.SmtpPort, Allowed);
        await using (allowed) Assert.Equal("220-mta.test ESMTP\r\n220 mta.test ESMTP", greeting.TrimEnd());
        Assert.True(took < TimeSpan.FromSeconds(3), $"an allowlisted client waited {took} of the 4 s pause");
        Assert.Single(mta.Log.Matching("PASS NEW [127.0.0.7]:"));

        var (listed, dropped, _) = await ConnectAsync(mta.SmtpPort, Listed);
        await using (listed)
        {
            Assert.Equal("220-mta.test ESMTP\r\n521 5.7.1 Service unavailable; client [127.0.0.8] blocked using bl.test", dropped.TrimEnd());
            Assert.True(await listed.ClosedAsync());
        }

        // Talking before the greeting is over: postscreen_greet_action = drop.
        var (talker, reply) = await RawSmtpClient.ConnectAsync(IPAddress.Loopback, mta.SmtpPort, Talker, "EHLO spambot.test\r\n");
        await using (talker)
        {
            Assert.Equal("220-mta.test ESMTP\r\n521 5.5.1 Protocol error", reply.TrimEnd());
            Assert.True(await talker.ClosedAsync());
        }
        Assert.Single(mta.Log.Matching("PREGREET", "[127.0.0.10]:", "EHLO spambot.test\\r\\n"));
        Assert.Empty(mta.Log.Matching("connect from [127.0.0.10]")); // no session was started for it
    }

    [Fact]
    public async Task A_pass_on_one_replica_holds_on_another_sharing_the_storage()
    {
        await using var dns = await ListsAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var first = await MtaSystem.StartAsync(azurite.ConnectionString, Settings(dns, "enforce"), functions: false);
        await using var second = await MtaSystem.StartAsync(azurite.ConnectionString, Settings(dns, "enforce"), functions: false);

        var (a, greeting, _) = await ConnectAsync(first.SmtpPort, Talker);
        await using (a) Assert.StartsWith("220-", greeting);
        var (b, other, took) = await ConnectAsync(second.SmtpPort, Talker);
        await using (b) Assert.Equal("220 mta.test ESMTP", other.TrimEnd());
        Assert.True(took < TimeSpan.FromSeconds(1.8), $"the second replica paused a passed client for {took} (the pause is 2 s)");
        Assert.Single(second.Log.Matching("PASS OLD [127.0.0.10]:"));
    }

    [SkippableFact]
    public async Task Sessions_wait_out_the_pause_together_so_it_does_not_cap_throughput()
    {
        var source = TestEnvironment.RequireTool("smtp-source");
        await using var dns = await ListsAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, Settings(dns, "enforce"), functions: false);
        var clock = Stopwatch.StartNew();
        var (exit, output) = await EndToEndTests.RunAsync(source, "-s", "20", "-m", "40", "-l", "2048", "-f", "load@sender.test",
            "-t", "user@localhost", $"127.0.0.1:{mta.SmtpPort}");
        Assert.True(exit == 0, output);
        // 20 sessions that each waited 2 s one after the other would take 40 s.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"40 messages in 20 sessions took {clock.Elapsed}");
        Assert.True(mta.Log.Matching("CONNECT from [127.0.0.1]:").Count >= 2, "the sessions were not paused");
        Assert.Equal(40, (await QueuePeek.DeliveryAsync(azurite.ConnectionString)).Count);
    }
}

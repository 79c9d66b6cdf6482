using MailKit.Net.Smtp;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Configuration;
using Mta.Mail.Delivery;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>MX resolution against a real DNS server (dnsmasq on loopback), per RFC 5321 §5.1 and RFC 7505.</summary>
[RunsLong(45)]
public sealed class DnsRoutingTests : IAsyncLifetime
{
    private Dnsmasq _dns = null!;

    public async Task InitializeAsync()
    {
        TestEnvironment.RequireTool("dnsmasq");
        _dns = await Dnsmasq.StartAsync(
            "--mx-host=pref.test,mx2.pref.test,20", "--mx-host=pref.test,mx1.pref.test,10",
            "--host-record=mx1.pref.test,127.0.0.2", "--host-record=mx2.pref.test,127.0.0.1",
            "--host-record=plain.test,127.0.0.1",
            "--mx-host=nullmx.test,.,0",
            $"--server=/fail.test/127.0.0.1#{TestEnvironment.FreeUdpPort()}"); // an upstream that never answers
    }

    public async Task DisposeAsync()
    {
        if (_dns is not null) await _dns.DisposeAsync();
    }

    private MxResolver Resolver() => new(Options.Create(new MtaOptions { DnsServers = [_dns.Server] }));

    [SkippableFact]
    public async Task Mx_hosts_come_in_preference_order()
    {
        var hosts = await Resolver().ResolveMxAsync("pref.test", CancellationToken.None);
        Assert.Equal(["mx1.pref.test/127.0.0.2", "mx2.pref.test/127.0.0.1"], hosts.Select(h => $"{h.Name}/{h.Address}"));
    }

    [SkippableFact]
    public async Task A_domain_without_mx_is_its_own_mail_host()
    {
        var hosts = await Resolver().ResolveMxAsync("plain.test", CancellationToken.None);
        Assert.Equal(["plain.test/127.0.0.1"], hosts.Select(h => $"{h.Name}/{h.Address}"));
    }

    [SkippableFact]
    public async Task Null_mx_and_nxdomain_are_permanent_and_servfail_is_temporary()
    {
        var nullMx = await Assert.ThrowsAsync<DnsLookupException>(() => Resolver().ResolveMxAsync("nullmx.test", CancellationToken.None));
        Assert.True(nullMx.Permanent);
        Assert.Contains("null MX", nullMx.Message);
        var nx = await Assert.ThrowsAsync<DnsLookupException>(() => Resolver().ResolveMxAsync("no-such-domain.test", CancellationToken.None));
        Assert.True(nx.Permanent);
        var fail = await Assert.ThrowsAsync<DnsLookupException>(() => Resolver().ResolveMxAsync("x.fail.test", CancellationToken.None));
        Assert.False(fail.Permanent, fail.Message);
    }

    [SkippableFact]
    public async Task Delivery_moves_on_to_the_next_mx_when_the_first_refuses_connections()
    {
        // mx1 (127.0.0.2) has nothing listening; mx2 (127.0.0.1) is smtp-sink, on the same port.
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:DnsServers:0"] = _dns.Server,
            ["Mta:SmtpPort"] = sink.Port.ToString(),
        });
        var m = TestMail.Message("a@sender.test", "someone@pref.test", "second mx " + Guid.NewGuid().ToString("N"));
        await TestMail.SendAsync(mta.SmtpPort, m);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains(m.Subject!))),
            TimeSpan.FromSeconds(60)), "not delivered to the second MX");
    }

    [SkippableFact]
    public async Task Delivery_moves_on_to_the_next_mx_after_a_421_greeting()
    {
        // mx1 (127.0.0.2) greets with 421 and hangs up; mx2 (127.0.0.1) takes the mail, on the same port.
        var port = TestEnvironment.FreeTcpPort();
        await using var busy = await SmtpSink.StartOnAsync("127.0.0.2", port, "-Q", "CONNECT");
        await using var sink = await SmtpSink.StartOnAsync("127.0.0.1", port);
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:DnsServers:0"] = _dns.Server,
            ["Mta:SmtpPort"] = port.ToString(),
        });
        var m = TestMail.Message("a@sender.test", "someone@pref.test", "busy first mx " + Guid.NewGuid().ToString("N"));
        await TestMail.SendAsync(mta.SmtpPort, m);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains(m.Subject!))),
            TimeSpan.FromSeconds(60)), "not delivered to the second MX");
        Assert.NotEmpty(mta.Log.Matching($"connect to mx1.pref.test[127.0.0.2]:{port}", "421"));
        Assert.Empty(busy.Dumps());
    }

    [SkippableFact]
    public async Task Null_mx_domain_bounces_with_5_1_10()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?> { ["Mta:DnsServers:0"] = _dns.Server });
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "anyone@nullmx.test", "to a null mx"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("sender").Length == 1), TimeSpan.FromSeconds(60)));
        Assert.Contains("Status: 5.1.10", await File.ReadAllTextAsync(mta.Maildir("sender")[0]));
    }

    [SkippableFact]
    public async Task An_mx_at_an_internal_address_is_not_connected_to_unless_the_administrator_named_the_next_hop()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"named.test smtp:[127.0.0.1]:{sink.Port}\n");
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:DnsServers:0"] = _dns.Server, ["Mta:SmtpPort"] = sink.Port.ToString(), ["Mta:TransportMapFile"] = map,
            ["Mta:DeliverToInternalNetworks"] = "false", // as shipped: the test systems allow loopback
        });
        // pref.test's MX hosts are 127.0.0.2 and 127.0.0.1, which anyone's DNS can say: bounced, nothing connected to.
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "someone@pref.test", "to an internal mx"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("sender").Length == 1), TimeSpan.FromSeconds(60)),
            string.Join("\n", mta.Log.Lines));
        Assert.Contains("Status: 5.4.4", await File.ReadAllTextAsync(mta.Maildir("sender")[0]));
        Assert.Empty(sink.Dumps());
        Assert.NotEmpty(mta.Log.Matching("pref.test: mail hosts only at internal addresses (127.0.0.2, 127.0.0.1); refused"));
        // The same address named in the transport map is the administrator's choice: delivered.
        var named = TestMail.Message("sender@localhost", "someone@named.test", "to a named next hop " + Guid.NewGuid().ToString("N"));
        await TestMail.SendAsync(mta.SmtpPort, named);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains(named.Subject!))),
            TimeSpan.FromSeconds(60)), string.Join("\n", mta.Log.Lines));
    }
}

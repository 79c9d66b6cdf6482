using System.Net;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The ingress behind HAProxy with the PROXY protocol (<c>Ingress:UpstreamProxyProtocol = haproxy</c>): the client it
/// decides about, logs and writes into Received is the one HAProxy relays, and nobody but HAProxy can name one.
/// </summary>
public sealed class UpstreamProxyTests
{
    private static readonly IPAddress Loopback = IPAddress.Loopback;
    private static readonly IPAddress Trusted = IPAddress.Parse("127.0.0.7");   // in TrustedNetworks: may relay
    private static readonly IPAddress Stranger = IPAddress.Parse("127.0.0.8");  // may not
    private static readonly IPAddress Spoofer = IPAddress.Parse("127.0.0.9");   // not a balancer

    private static Dictionary<string, string?> Settings() => new()
    {
        ["Ingress:UpstreamProxyProtocol"] = "haproxy",
        ["Ingress:UpstreamProxyNetworks:0"] = "127.0.0.1/32", // HAProxy connects from here
        ["Ingress:UpstreamProxyTimeoutSeconds"] = "2",
        // The balancer's own address may not relay: only the client it names can make a relay decision come out yes.
        ["Ingress:TrustedNetworks:0"] = "127.0.0.7/32",
    };

    [Fact]
    public async Task Relay_control_logs_and_received_see_the_client_haproxy_relays_over_both_versions()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, Settings(), functions: false);
        await using var haproxy = await HaProxy.StartAsync(mta.SmtpPort);

        foreach (var (front, version) in new[] { (haproxy.V1Port, "v1"), (haproxy.V2Port, "v2") })
        {
            // The trusted client relays; the stranger, coming in through the same balancer, may not.
            var (trusted, greeting) = await RawSmtpClient.ConnectAsync(Loopback, front, Trusted);
            await using (trusted)
            {
                Assert.StartsWith("220 ", greeting);
                Assert.StartsWith("354", await trusted.StartDataAsync("a@client.test", $"someone-{version}@elsewhere.test"));
                Assert.StartsWith("250", await trusted.CommandAsync($"Subject: {version}\r\n\r\nbody\r\n."));
            }
            var (stranger, _) = await RawSmtpClient.ConnectAsync(Loopback, front, Stranger);
            await using (stranger)
            {
                Assert.StartsWith("250", await stranger.CommandAsync("EHLO client.test"));
                Assert.StartsWith("250", await stranger.CommandAsync("MAIL FROM:<a@client.test>"));
                Assert.StartsWith("554 5.7.1", await stranger.CommandAsync($"RCPT TO:<someone-{version}@elsewhere.test>"));
                Assert.StartsWith("250", await stranger.CommandAsync("RCPT TO:<user@localhost>"));
            }
        }

        var jobs = await QueuePeek.DeliveryAsync(azurite.ConnectionString);
        Assert.Equal(2, jobs.Count);
        foreach (var job in jobs)
            Assert.Contains("from client.test ([127.0.0.7])", System.Text.Encoding.UTF8.GetString(job.Content!));
        Assert.Equal(2, mta.Log.Matching("connect from [127.0.0.7]").Count(l => !l.Contains("disconnect")));
        Assert.Equal(2, mta.Log.Matching("connect from [127.0.0.8]").Count(l => !l.Contains("disconnect")));
        Assert.Empty(mta.Log.Matching("connect from [127.0.0.1]"));
    }

    [Fact]
    public async Task Nobody_but_a_listed_balancer_names_a_client_and_a_balancer_must_name_one()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, Settings(), functions: false);

        // A spoofed header straight from a client that is not a balancer: refused, whatever address it claims.
        var (spoofed, reply) = await RawSmtpClient.ConnectAsync(Loopback, mta.SmtpPort, Spoofer,
            $"PROXY TCP4 127.0.0.7 127.0.0.1 40000 {mta.SmtpPort}\r\n");
        await using (spoofed)
        {
            Assert.StartsWith("421 4.3.0 mta.test", reply);
            Assert.True(await spoofed.ClosedAsync());
        }
        // From the balancer's address: SMTP instead of a header, and nothing at all, are refused too.
        var (talker, early) = await RawSmtpClient.ConnectAsync(Loopback, mta.SmtpPort, Loopback, "EHLO client.test\r\n");
        await using (talker) Assert.StartsWith("421 4.3.0", early);
        var (silent, late) = await RawSmtpClient.ConnectAsync(Loopback, mta.SmtpPort, Loopback);
        await using (silent) Assert.StartsWith("421 4.3.0", late);

        Assert.Single(mta.Log.Matching("warning:", "[127.0.0.9] is not from a load balancer"));
        Assert.Single(mta.Log.Matching("warning: haproxy read: unrecognized protocol header from [127.0.0.1]"));
        Assert.Single(mta.Log.Matching("warning: haproxy read: timeout error from [127.0.0.1]"));
        Assert.Empty(mta.Log.Matching("connect from"));
        Assert.Empty(await QueuePeek.DeliveryAsync(azurite.ConnectionString));
    }
}

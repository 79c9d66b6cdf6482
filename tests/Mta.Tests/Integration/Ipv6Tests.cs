using System.Net;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The ingress on a dual-stack listener (<c>Ingress:ListenAddress = ::</c>), with clients on <c>::1</c> and on
/// <c>127.0.0.1</c>: relay control, per-client limits, logs and Received take each as what it is, and an IPv4 client
/// that arrives IPv4-mapped as IPv4.
/// </summary>
public sealed class Ipv6Tests
{
    private static Task<MtaSystem> StartAsync(string storage, string trusted) => MtaSystem.StartAsync(storage, new Dictionary<string, string?>
    {
        ["Ingress:ListenAddress"] = "::",
        ["Ingress:TrustedNetworks:0"] = trusted,
        ["Ingress:MaxConnectionsPerClient"] = "2",
    }, functions: false);

    private static async Task<string> RcptAsync(IPAddress server, int port, IPAddress from, string recipient)
    {
        var (client, greeting) = await RawSmtpClient.ConnectAsync(server, port, from);
        await using var _ = client;
        Assert.StartsWith("220 ", greeting);
        Assert.StartsWith("250", await client.CommandAsync("EHLO client.test"));
        Assert.StartsWith("250", await client.CommandAsync("MAIL FROM:<a@client.test>"));
        return await client.CommandAsync($"RCPT TO:<{recipient}>");
    }

    [Theory]
    [InlineData("127.0.0.1/32", "127.0.0.1", "::1")]   // 127.0.0.1 arrives as ::ffff:127.0.0.1 and is matched as IPv4
    [InlineData("::1/128", "::1", "127.0.0.1")]
    public async Task Only_the_trusted_network_relays_whichever_family_it_is(string trusted, string inside, string outside)
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await StartAsync(azurite.ConnectionString, trusted);
        // Each client dials the listener in its own family: an IPv4 one reaches the dual-stack socket IPv4-mapped.
        Task<string> FromAsync(string address)
        {
            var from = IPAddress.Parse(address);
            var server = from.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? IPAddress.Loopback : IPAddress.IPv6Loopback;
            return RcptAsync(server, mta.SmtpPort, from, "x@elsewhere.test");
        }
        Assert.StartsWith("250", await FromAsync(inside));
        Assert.StartsWith("554 5.7.1", await FromAsync(outside));
    }

    [Fact]
    public async Task Ipv6_clients_are_limited_logged_and_received_as_ipv6_and_mapped_ipv4_ones_as_ipv4()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await StartAsync(azurite.ConnectionString, "127.0.0.1/32");
        Assert.StartsWith("250", await RcptAsync(IPAddress.Loopback, mta.SmtpPort, IPAddress.Loopback, "x@elsewhere.test"));

        var (client, _) = await RawSmtpClient.ConnectAsync(IPAddress.IPv6Loopback, mta.SmtpPort, IPAddress.IPv6Loopback);
        await using (client)
        {
            Assert.StartsWith("354", await client.StartDataAsync("a@client.test", "user@localhost"));
            Assert.StartsWith("250", await client.CommandAsync("Subject: v6\r\n\r\nbody\r\n."));
        }
        var job = Assert.Single(await QueuePeek.DeliveryAsync(azurite.ConnectionString));
        Assert.Contains("from client.test ([IPv6:::1])", System.Text.Encoding.UTF8.GetString(job.Content!));
        Assert.NotEmpty(mta.Log.Matching("connect from [::1]"));
        Assert.Single(mta.Log.Matching("connect from [127.0.0.1]"), l => !l.Contains("disconnect"));
        Assert.Empty(mta.Log.Matching("::ffff:"));

        // Two sessions from ::1 at once are its limit; a third is refused, while IPv4 clients are not held up by it.
        var held = new List<RawSmtpClient>();
        for (var i = 0; i < 2; i++)
        {
            var (c, greeting) = await RawSmtpClient.ConnectAsync(IPAddress.IPv6Loopback, mta.SmtpPort, IPAddress.IPv6Loopback);
            held.Add(c);
            Assert.StartsWith("220 ", greeting);
        }
        var (third, refusal) = await RawSmtpClient.ConnectAsync(IPAddress.IPv6Loopback, mta.SmtpPort, IPAddress.IPv6Loopback);
        await using (third) Assert.StartsWith("421 4.7.0 Error: too many connections from ::1", refusal);
        var (v4, v4Greeting) = await RawSmtpClient.ConnectAsync(IPAddress.Loopback, mta.SmtpPort, IPAddress.Loopback);
        await using (v4) Assert.StartsWith("220 ", v4Greeting);
        foreach (var c in held) await c.DisposeAsync();
    }
}

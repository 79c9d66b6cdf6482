using System.Net;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// anvil's per-client rates counted for the whole cluster: two ingress replicas on their own ports, sharing one
/// storage account, hold one client to one limit between them, while another client has its own.
/// </summary>
public sealed class ClientRateTests
{
    private static readonly IPAddress Client = IPAddress.Parse("127.0.0.8");
    private static readonly IPAddress Other = IPAddress.Parse("127.0.0.9");

    private static Task<MtaSystem> ReplicaAsync(string storage) => MtaSystem.StartAsync(storage, new Dictionary<string, string?>
    {
        ["Ingress:TrustedNetworks:0"] = "10.0.0.0/8", // loopback clients are counted
        ["Ingress:ConnectionRatePerClient"] = "6",
        ["Ingress:MessageRatePerClient"] = "3",
        ["Ingress:RecipientRatePerClient"] = "4",
        // Ten minutes per unit: no event frees up while the test runs, however slow the machine.
        ["Ingress:ClientRateWindowSeconds"] = "600",
    }, functions: false);

    private static async Task<string> GreetingAsync(int port, IPAddress from)
    {
        var (client, greeting) = await RawSmtpClient.ConnectAsync(IPAddress.Loopback, port, from);
        await client.DisposeAsync();
        return greeting;
    }

    [Fact]
    public async Task A_clients_rates_hold_across_replicas()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var a = await ReplicaAsync(azurite.ConnectionString);
        await using var b = await ReplicaAsync(azurite.ConnectionString);
        var ports = new[] { a.SmtpPort, b.SmtpPort };

        // Connections: six between the two replicas, then the seventh is refused wherever it lands.
        for (var i = 0; i < 6; i++) Assert.StartsWith("220 ", await GreetingAsync(ports[i % 2], Client));
        Assert.StartsWith("421 4.7.0 Error: too many connections from 127.0.0.8", await GreetingAsync(ports[0], Client));
        Assert.StartsWith("421 4.7.0 Error: too many connections from 127.0.0.8", await GreetingAsync(ports[1], Client));
        Assert.StartsWith("220 ", await GreetingAsync(ports[1], Other));

        // Messages and recipients from another client, one session on each replica.
        var (first, _) = await RawSmtpClient.ConnectAsync(IPAddress.Loopback, a.SmtpPort, Other);
        var (second, _) = await RawSmtpClient.ConnectAsync(IPAddress.Loopback, b.SmtpPort, Other);
        await using (first)
        await using (second)
        {
            Assert.StartsWith("250", await first.CommandAsync("EHLO client.test"));
            Assert.StartsWith("250", await second.CommandAsync("EHLO client.test"));
            Assert.StartsWith("250", await first.CommandAsync("MAIL FROM:<a@client.test>"));
            Assert.StartsWith("250", await second.CommandAsync("MAIL FROM:<a@client.test>"));
            for (var i = 0; i < 2; i++) Assert.StartsWith("250", await first.CommandAsync($"RCPT TO:<user{i}@localhost>"));
            for (var i = 0; i < 2; i++) Assert.StartsWith("250", await second.CommandAsync($"RCPT TO:<user{i}@localhost>"));
            Assert.Equal("450 4.7.1 Error: too many recipients from 127.0.0.9", (await first.CommandAsync("RCPT TO:<user9@localhost>")).TrimEnd());
            Assert.StartsWith("250", await second.CommandAsync("RSET"));
            Assert.StartsWith("250", await second.CommandAsync("MAIL FROM:<a@client.test>"));
            Assert.StartsWith("250", await second.CommandAsync("RSET"));
            Assert.Equal("450 4.7.1 Error: too much mail from 127.0.0.9", (await second.CommandAsync("MAIL FROM:<a@client.test>")).TrimEnd());
        }
        Assert.NotEmpty(b.Log.Matching("warning: 450 4.7.1 Error: too much mail from 127.0.0.9"));
    }
}

namespace Mta.Tests.Peers;

/// <summary>
/// A real DNS server (dnsmasq) on a loopback port, authoritative for <c>.test</c>:
/// unknown names there get NXDOMAIN (thanks to <c>--local=/test/</c>), never a forward.
/// </summary>
public sealed class Dnsmasq : PeerProcess
{
    /// <summary>UDP/TCP port it answers on.</summary>
    public int Port { get; }

    private Dnsmasq(string bin, int port, IEnumerable<string> records)
        : base(bin, new[] { "--no-daemon", "--port", port.ToString(), "--listen-address", "127.0.0.1", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--pid-file", "--local=/test/", "--log-queries=extra", "--log-facility=-" }.Concat(records))
        => Port = port;

    /// <summary>Starts dnsmasq with records such as <c>--mx-host=example.test,mx1.example.test,10</c>.</summary>
    public static async Task<Dnsmasq> StartAsync(params string[] records)
    {
        var bin = TestEnvironment.RequireTool("dnsmasq");
        var dns = new Dnsmasq(bin, TestEnvironment.FreeUdpPort(), records);
        await TestEnvironment.WaitForTcpAsync(dns.Port, TimeSpan.FromSeconds(10), dns.Process);
        return dns;
    }

    /// <summary>The <c>Mta:DnsServers</c> entry for it.</summary>
    public string Server => $"127.0.0.1:{Port}";
}

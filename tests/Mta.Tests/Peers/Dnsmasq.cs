namespace Mta.Tests.Peers;

/// <summary>
/// A real DNS server (dnsmasq) on a loopback port, authoritative for <c>.test</c>:
/// unknown names there get NXDOMAIN (thanks to <c>--local=/test/</c>), never a forward.
/// </summary>
public sealed class Dnsmasq : PeerProcess
{
    /// <summary>UDP/TCP port it answers on.</summary>
    public int Port { get; }

    private Dnsmasq(string bin, string address, int port, IEnumerable<string> records)
        : base(bin, new[] { "--no-daemon", "--port", port.ToString(), "--listen-address", address, "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--pid-file", "--local=/test/", "--log-queries=extra", "--log-facility=-" }.Concat(records))
        => Port = port;

    /// <summary>Starts dnsmasq with records such as <c>--mx-host=example.test,mx1.example.test,10</c>.</summary>
    public static async Task<Dnsmasq> StartAsync(params string[] records)
    {
        // dnsmasq binds TCP as well as UDP on the port picked free for UDP; if the TCP one is taken (or someone took
        // the UDP one first) it exits at once: try again with another port.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnAsync(TestEnvironment.FreeUdpPort(), records);
            }
            catch (InvalidOperationException) when (attempt < 5) { }
        }
    }

    /// <summary>Starts dnsmasq on a given port (to bring DNS back where it was).</summary>
    public static Task<Dnsmasq> StartOnAsync(int port, params string[] records) => StartAtAsync("127.0.0.1", port, records);

    /// <summary>Starts dnsmasq on a given loopback address and port (port 53 on an address of its own, for programs that use the system resolver).</summary>
    public static async Task<Dnsmasq> StartAtAsync(string address, int port, params string[] records)
    {
        var bin = TestEnvironment.RequireTool("dnsmasq");
        var dns = new Dnsmasq(bin, address, port, records);
        try
        {
            await TestEnvironment.WaitForTcpAsync(dns.Port, TimeSpan.FromSeconds(10), dns.Process, System.Net.IPAddress.Parse(address));
            return dns;
        }
        catch (InvalidOperationException e)
        {
            await dns.DisposeAsync();
            throw new InvalidOperationException($"{e.Message}; dnsmasq said:\n{dns.Output}", e);
        }
    }

    /// <summary>The <c>Mta:DnsServers</c> entry for it.</summary>
    public string Server => $"127.0.0.1:{Port}";
}

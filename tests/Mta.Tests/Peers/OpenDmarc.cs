namespace Mta.Tests.Peers;

/// <summary>
/// OpenDMARC (Debian's) as a milter on loopback, rejecting DMARC failures. It asks the system resolver for policies,
/// with no setting for another server, so it runs in a mount namespace of its own (<c>unshare -m</c>, as root) where
/// <c>/etc/resolv.conf</c> names the test's dnsmasq on port 53 of a loopback address of its own.
/// </summary>
public sealed class OpenDmarc : PeerProcess
{
    /// <summary>Where it listens, as <c>Ingress:Milters</c> names it.</summary>
    public string Address { get; }

    private OpenDmarc(string script, int port) : base("unshare", ["-m", "/bin/sh", "-c", script]) => Address = $"inet:127.0.0.1:{port}";

    /// <summary>Starts it with <paramref name="dnsAddress"/> (port 53) as its only name server.</summary>
    public static async Task<OpenDmarc> StartAsync(string dnsAddress)
    {
        var opendmarc = TestEnvironment.RequireTool("opendmarc");
        var folder = TestEnvironment.TempFolder("opendmarc");
        var resolv = Path.Combine(folder, "resolv.conf");
        await File.WriteAllTextAsync(resolv, $"nameserver {dnsAddress}\n");
        // Loopback is an ignored host by default; here it is the client whose mail is checked.
        await File.WriteAllTextAsync(Path.Combine(folder, "ignore"), "192.0.2.1\n");
        var port = TestEnvironment.FreeTcpPort();
        var config = Path.Combine(folder, "opendmarc.conf");
        // No SPF check of its own (libspf2 passes loopback clients): with neither SPF nor DKIM results a domain fails DMARC.
        await File.WriteAllTextAsync(config, $"Socket inet:{port}@127.0.0.1\nRejectFailures true\nSPFSelfValidate false\nAuthservID mta.test\n"
            + $"TrustedAuthservIDs mta.test\nIgnoreHosts {Path.Combine(folder, "ignore")}\nBackground false\nSyslog false\nPidFile {folder}/pid\n");
        var dmarc = new OpenDmarc($"mount --bind '{resolv}' /etc/resolv.conf && exec '{opendmarc}' -f -c '{config}'", port);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(20), dmarc.Process);
        return dmarc;
    }
}

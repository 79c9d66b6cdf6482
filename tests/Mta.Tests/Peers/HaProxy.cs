namespace Mta.Tests.Peers;

/// <summary>
/// HAProxy (Debian <c>haproxy</c>) in TCP mode in front of a server: one front port relaying with the PROXY protocol
/// version 1 (<c>send-proxy</c>), another with version 2 (<c>send-proxy-v2</c>), as a cloud or on-premises balancer does.
/// </summary>
public sealed class HaProxy : PeerProcess
{
    /// <summary>The front port whose connections reach the server after a version 1 header.</summary>
    public int V1Port { get; }

    /// <summary>The front port whose connections reach the server after a version 2 header.</summary>
    public int V2Port { get; }

    private HaProxy(string bin, string config, int v1, int v2) : base(bin, ["-db", "-f", config])
        => (V1Port, V2Port) = (v1, v2);

    /// <summary>Starts HAProxy relaying to <c>127.0.0.1:<paramref name="serverPort"/></c>.</summary>
    public static async Task<HaProxy> StartAsync(int serverPort)
    {
        var bin = TestEnvironment.RequireTool("haproxy");
        var (v1, v2) = (TestEnvironment.FreeTcpPort(), TestEnvironment.FreeTcpPort());
        var config = Path.Combine(TestEnvironment.TempFolder("haproxy"), "haproxy.cfg");
        await File.WriteAllTextAsync(config, $"""
            global
                maxconn 200
            defaults
                mode tcp
                timeout connect 5s
                timeout client 60s
                timeout server 60s
            frontend smtp_v1
                bind 127.0.0.1:{v1}
                default_backend ingress_v1
            frontend smtp_v2
                bind 127.0.0.1:{v2}
                default_backend ingress_v2
            backend ingress_v1
                server ingress 127.0.0.1:{serverPort} send-proxy
            backend ingress_v2
                server ingress 127.0.0.1:{serverPort} send-proxy-v2

            """);
        var proxy = new HaProxy(bin, config, v1, v2);
        try
        {
            // Waits on the port only (a test connection would reach the server as a client).
            await WaitForListenAsync(v1, proxy);
            await WaitForListenAsync(v2, proxy);
            return proxy;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            await proxy.DisposeAsync();
            throw new InvalidOperationException($"{e.Message}; haproxy said:\n{proxy.Output}", e);
        }
    }

    private static async Task WaitForListenAsync(int port, PeerProcess owner)
    {
        var ok = await TestEnvironment.EventuallyAsync(() =>
        {
            if (owner.Process.HasExited) throw new InvalidOperationException($"haproxy exited with {owner.Process.ExitCode}");
            var listening = System.Net.NetworkInformation.IPGlobalProperties.GetIPGlobalProperties().GetActiveTcpListeners();
            return Task.FromResult(listening.Any(e => e.Port == port));
        }, TimeSpan.FromSeconds(10));
        if (!ok) throw new TimeoutException($"haproxy does not listen on {port}");
    }
}

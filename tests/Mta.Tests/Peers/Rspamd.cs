namespace Mta.Tests.Peers;

/// <summary>
/// rspamd (Debian's 3.4) with only its proxy worker, in milter mode and scanning itself (<c>self_scan</c>): Debian's
/// rules, DNS pointed at a closed loopback port (no network here), and headers added to every message it passes.
/// </summary>
public sealed class Rspamd : PeerProcess
{
    /// <summary>Where it listens, as <c>Ingress:Milters</c> names it.</summary>
    public string Address { get; }

    private Rspamd(string config, string folder, int port)
        : base(TestEnvironment.RequireTool("rspamd"), ["-f", "-i", "-c", config, $"--var=LOCAL_CONFDIR={folder}", $"--var=DBDIR={folder}",
            $"--var=RUNDIR={folder}", $"--var=LOGDIR={folder}"])
        => Address = $"inet:127.0.0.1:{port}";

    private static readonly Lazy<Task<Rspamd>> Shared = new(async () =>
    {
        var rspamd = await StartAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => rspamd.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
        return rspamd;
    });

    /// <summary>
    /// One rspamd for the whole test run, stopped when the run ends: its start compiles Debian's rules, several seconds of
    /// both cores, and the tests that use it only scan (it keeps no state between messages that they look at).
    /// </summary>
    public static Task<Rspamd> SharedAsync() => Shared.Value;

    /// <summary>Starts it and waits until the proxy listens.</summary>
    public static async Task<Rspamd> StartAsync()
    {
        var folder = TestEnvironment.TempFolder("rspamd");
        Directory.CreateDirectory(Path.Combine(folder, "local.d"));
        await File.WriteAllTextAsync(Path.Combine(folder, "local.d", "milter_headers.conf"),
            "use = [\"x-spamd-result\", \"x-spam-status\"];\nskip_local = false;\nskip_authenticated = false;\n");
        var port = TestEnvironment.FreeTcpPort();
        var config = Path.Combine(folder, "rspamd.conf");
        await File.WriteAllTextAsync(config, $$"""
            .include "$CONFDIR/common.conf"
            options {
                pidfile = "{{folder}}/rspamd.pid";
                .include "$CONFDIR/options.inc"
                dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }
            }
            logging { type = "console"; level = "error"; }
            worker "rspamd_proxy" {
                bind_socket = "127.0.0.1:{{port}}";
                milter = yes;
                timeout = 120s;
                count = 1;
                upstream "local" { default = yes; self_scan = yes; }
            }
            """);
        var rspamd = new Rspamd(config, folder, port);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(60), rspamd.Process);
        return rspamd;
    }
}

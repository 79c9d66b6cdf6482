namespace Mta.Tests.Peers;

/// <summary>
/// OpenDKIM (Debian's <c>opendkim</c>) as a milter on a loopback port: signing for one domain with a key made by
/// <c>opendkim-genkey</c>, or verifying with the public keys it is given in place of DNS (<c>TestDNSData</c>).
/// </summary>
public sealed class OpenDkim : PeerProcess
{
    /// <summary>Where it listens, as <c>Ingress:Milters</c> names it.</summary>
    public string Address { get; }

    /// <summary>The signing key's public half (the <c>p=</c> of its DNS record), when it signs.</summary>
    public string? PublicKey { get; init; }

    private OpenDkim(string config, int port) : base(TestEnvironment.RequireTool("opendkim"), ["-f", "-x", config]) => Address = $"inet:127.0.0.1:{port}";

    /// <summary>Signs mail from <paramref name="domain"/> with selector <paramref name="selector"/> (and verifies other mail).</summary>
    public static async Task<OpenDkim> SignerAsync(string domain, string selector)
    {
        var folder = TestEnvironment.TempFolder("opendkim");
        var (exit, output) = await Integration.EndToEndTests.RunAsync(TestEnvironment.RequireTool("opendkim-genkey"), "-D", folder, "-d", domain, "-s", selector);
        if (exit != 0) throw new InvalidOperationException(output);
        var record = await File.ReadAllTextAsync(Path.Combine(folder, selector + ".txt"));
        var publicKey = string.Concat(System.Text.RegularExpressions.Regex.Matches(record, "\"([^\"]*)\"").Select(m => m.Groups[1].Value))
            .Split(';', StringSplitOptions.TrimEntries).Single(t => t.StartsWith("p=", StringComparison.Ordinal))[2..];
        return await StartAsync(folder, $"Mode sv\nDomain {domain}\nSelector {selector}\nKeyFile {Path.Combine(folder, selector + ".private")}\n", publicKey);
    }

    /// <summary>Verifies mail, finding each <c>selector._domainkey.domain</c> key in <paramref name="keys"/> instead of DNS.</summary>
    public static async Task<OpenDkim> VerifierAsync(IReadOnlyDictionary<string, string> keys)
    {
        var folder = TestEnvironment.TempFolder("opendkim");
        var dns = Path.Combine(folder, "dns");
        await File.WriteAllLinesAsync(dns, keys.Select(k => $"{k.Key} {k.Value}"));
        // Loopback is not an internal host here, so the test's mail is verified rather than signed.
        return await StartAsync(folder, $"Mode v\nTestDNSData file:{dns}\nInternalHosts 192.0.2.1\n", null);
    }

    private static async Task<OpenDkim> StartAsync(string folder, string settings, string? publicKey)
    {
        var port = TestEnvironment.FreeTcpPort();
        var config = Path.Combine(folder, "opendkim.conf");
        await File.WriteAllTextAsync(config, settings + $"Socket inet:{port}@127.0.0.1\nCanonicalization relaxed/relaxed\nBackground no\n"
            + "Syslog no\nAuthservID mta.test\nRequireSafeKeys false\nPidFile " + Path.Combine(folder, "pid") + "\n");
        var dkim = new OpenDkim(config, port) { PublicKey = publicKey };
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(20), dkim.Process);
        return dkim;
    }
}

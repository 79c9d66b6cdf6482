using System.Text;

namespace Mta.Tests.Peers;

/// <summary>
/// A real Postfix (Debian's) running from its own scratch configuration on a loopback port:
/// smtpd with SMTPUTF8, optional STARTTLS, and per-recipient answers from a check_recipient_access
/// map; accepted mail is discarded by Postfix's discard(8), whose log line proves the hand-off, or relayed by
/// Postfix's smtp(8) client to a relay host (to put Postfix's client in front of the ingress).
/// Postfix logs to its standard output (maillog_file = /dev/stdout), kept in <see cref="PeerProcess.Output"/>.
/// </summary>
public sealed class PostfixServer : PeerProcess
{
    /// <summary>The smtpd port.</summary>
    public int Port { get; }

    /// <summary>With a SASL service: a second smtpd with TLS from the first octet (<c>smtpd_tls_wrappermode</c>, "465").</summary>
    public int WrapperPort { get; private init; }

    private readonly string _config;
    private readonly string _postfix;

    private PostfixServer(string postfix, string config, int port) : base(postfix, ["-c", config, "start-fg"])
    {
        _postfix = postfix;
        _config = config;
        Port = port;
    }

    /// <summary>
    /// Starts Postfix. <paramref name="recipientReplies"/> maps an address to the reply smtpd gives at RCPT
    /// (e.g. <c>450 4.2.0 Mailbox busy</c>); others are accepted. With <paramref name="tlsCertFile"/>
    /// and <paramref name="tlsKeyFile"/>, STARTTLS is offered; with <paramref name="milters"/>, smtpd calls them (<c>smtpd_milters</c>);
    /// <paramref name="moreMainCf"/> is added to main.cf as written.
    /// </summary>
    public static async Task<PostfixServer> StartAsync(
        IReadOnlyDictionary<string, string>? recipientReplies = null, string? tlsCertFile = null, string? tlsKeyFile = null, string hostname = "postfix.test",
        string? relayHost = null, string? milters = null, string? saslPath = null, string? moreMainCf = null)
    {
        var postfix = TestEnvironment.RequireTool("postfix");
        var root = TestEnvironment.TempFolder("postfix");
        var config = Path.Combine(root, "conf");
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(config);
        Directory.CreateDirectory(Path.Combine(root, "queue"));
        Directory.CreateDirectory(data);
        // Postfix's master takes its lock in data_directory as the mail_owner.
        await Integration.EndToEndTests.RunAsync("chown", "postfix", data);
        var port = TestEnvironment.FreeTcpPort();

        var access = recipientReplies is { Count: > 0 }
            ? "check_recipient_access inline:{" + string.Join(",", recipientReplies.Select(kv => "{" + kv.Key + "=" + kv.Value + "}")) + "}, "
            : "";
        var main = new StringBuilder()
            .AppendLine("compatibility_level = 3.6")
            .AppendLine($"queue_directory = {root}/queue")
            .AppendLine($"data_directory = {data}")
            .AppendLine("mail_owner = postfix")
            .AppendLine("setgid_group = postdrop")
            .AppendLine($"myhostname = {hostname}")
            .AppendLine("inet_interfaces = 127.0.0.1")
            .AppendLine("inet_protocols = ipv4")
            .AppendLine("mydestination =")
            .AppendLine("alias_maps =")
            .AppendLine("alias_database =")
            .AppendLine(saslPath is null ? "mynetworks = 127.0.0.0/8" : "mynetworks = 192.0.2.0/24") // with SASL, loopback must log in
            .AppendLine("relay_domains = static:all")
            .AppendLine(relayHost is null ? "default_transport = discard:" : "default_transport = smtp")
            .AppendLine(relayHost is null ? "relay_transport = discard:" : "relay_transport = smtp")
            .AppendLine($"smtpd_recipient_restrictions = {access}permit_mynetworks, {(saslPath is null ? "" : "permit_sasl_authenticated, ")}reject")
            .AppendLine("smtputf8_enable = yes")
            .AppendLine("maillog_file = /dev/stdout");
        if (relayHost is not null)
        {
            // Postfix's own SMTP client as the peer: PIPELINING, opportunistic STARTTLS, to the given next hop.
            main.AppendLine($"relayhost = {relayHost}")
                .AppendLine("smtp_tls_security_level = may")
                .AppendLine("smtp_tls_loglevel = 1")
                .AppendLine("smtp_dns_support_level = disabled");
        }
        if (saslPath is not null)
        {
            // A provider's submission service: Dovecot's SASL, and AUTH only inside TLS (smtpd_tls_auth_only).
            main.AppendLine("smtpd_sasl_auth_enable = yes").AppendLine("smtpd_sasl_type = dovecot").AppendLine($"smtpd_sasl_path = {saslPath}")
                .AppendLine("smtpd_tls_auth_only = yes");
        }
        if (milters is not null) main.AppendLine($"smtpd_milters = {milters}").AppendLine("milter_default_action = tempfail");
        if (tlsCertFile is not null && tlsKeyFile is not null)
        {
            main.AppendLine($"smtpd_tls_cert_file = {tlsCertFile}")
                .AppendLine($"smtpd_tls_key_file = {tlsKeyFile}")
                .AppendLine("smtpd_tls_security_level = may")
                .AppendLine("smtpd_tls_loglevel = 1");
        }
        if (moreMainCf is not null) main.AppendLine(moreMainCf);
        await File.WriteAllTextAsync(Path.Combine(config, "main.cf"), main.ToString());
        var master = await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "tests", "postfix-peer", "master.cf"));
        var wrapperPort = saslPath is null ? 0 : TestEnvironment.FreeTcpPort();
        if (wrapperPort > 0) master += $"127.0.0.1:{wrapperPort} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n";
        await File.WriteAllTextAsync(Path.Combine(config, "master.cf"), master.Replace("@LISTEN@", $"127.0.0.1:{port}"));
        var server = new PostfixServer(postfix, config, port) { WrapperPort = wrapperPort };
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(30), server.Process);
        if (wrapperPort > 0) await TestEnvironment.WaitForTcpAsync(wrapperPort, TimeSpan.FromSeconds(30), server.Process);
        return server;
    }

    /// <summary>True once Postfix logged a hand-off of <paramref name="recipient"/> (discard or smtp: status=sent).</summary>
    public bool Received(string recipient) => Output.Split('\n').Any(l => l.Contains($"to=<{recipient}>") && l.Contains("status=sent"));

    /// <summary>Stops Postfix (postfix stop, then the process).</summary>
    public override async ValueTask DisposeAsync()
    {
        try { await Integration.EndToEndTests.RunAsync(_postfix, "-c", _config, "stop"); }
        catch (Exception) { /* the kill below ends it anyway */ }
        await base.DisposeAsync();
    }
}

namespace Mta.Tests.Peers;

/// <summary>
/// A real Dovecot LMTP server on a loopback port (Debian dovecot-lmtpd), from the shared test
/// configuration, with a passwd-file of known users so unknown ones are refused at RCPT.
/// </summary>
public sealed class DovecotLmtp : PeerProcess
{
    /// <summary>LMTP port.</summary>
    public int Port { get; }

    /// <summary>The scratch folder: Maildirs under mail/USER.</summary>
    public string Root { get; }

    private readonly string _config;

    private DovecotLmtp(string bin, string config, string root, int port) : base(bin, ["-F", "-c", config])
    {
        _config = config;
        Root = root;
        Port = port;
    }

    /// <summary>Starts Dovecot knowing only <paramref name="users"/>.</summary>
    public static async Task<DovecotLmtp> StartAsync(params string[] users)
    {
        var bin = TestEnvironment.RequireTool("dovecot");
        var root = TestEnvironment.TempFolder("dovecot");
        var mail = Path.Combine(root, "mail");
        Directory.CreateDirectory(mail);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(mail, (UnixFileMode)0b111_111_111); // delivered as nobody
        var port = TestEnvironment.FreeTcpPort();
        var passwd = Path.Combine(root, "users");
        await File.WriteAllLinesAsync(passwd, users.Select(u => $"{u}::65534:65534::{mail}/{u}::"));
        var config = Configuration(root, port, passwd);
        var file = Path.Combine(root, "dovecot.conf");
        await File.WriteAllTextAsync(file, config);
        var dovecot = new DovecotLmtp(bin, file, root, port);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(20), dovecot.Process);
        return dovecot;
    }

    /// <summary>
    /// LMTP only, on loopback, no TLS, Maildirs under the root; users from a passwd-file, so unknown ones get
    /// <c>550 5.1.1</c> at RCPT. Written here so the tests need nothing outside the repository.
    /// </summary>
    private static string Configuration(string root, int port, string passwd) => $$"""
        hostname = mta-test.localdomain
        protocols = lmtp
        listen = 127.0.0.1
        base_dir = {{root}}/run
        log_path = {{root}}/dovecot.log
        ssl = no
        mail_location = maildir:{{root}}/mail/%n
        passdb {
          driver = static
          args = nopassword=y
        }
        userdb {
          driver = passwd-file
          args = username_format=%n {{passwd}}
        }
        service lmtp {
          inet_listener lmtp {
            address = 127.0.0.1
            port = {{port}}
          }
        }

        """;

    /// <summary>Messages delivered to a user's Maildir.</summary>
    public string[] Delivered(string user)
    {
        var folder = Path.Combine(Root, "mail", user, "new");
        return Directory.Exists(folder) ? Directory.GetFiles(folder) : [];
    }

    /// <summary>Stops Dovecot (doveadm stop, then the process).</summary>
    public override async ValueTask DisposeAsync()
    {
        try
        {
            var doveadm = TestEnvironment.FindOnPath("doveadm");
            if (doveadm is not null) await Integration.EndToEndTests.RunAsync(doveadm, "-c", _config, "stop");
        }
        catch (Exception) { /* the kill below ends it anyway */ }
        await base.DisposeAsync();
    }
}

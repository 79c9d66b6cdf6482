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
        var template = Path.Combine(TestEnvironment.RequireShared("test-peers"), "dovecot-lmtp.conf");
        var root = TestEnvironment.TempFolder("dovecot");
        var mail = Path.Combine(root, "mail");
        Directory.CreateDirectory(mail);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(mail, (UnixFileMode)0b111_111_111); // delivered as nobody
        var port = TestEnvironment.FreeTcpPort();
        var passwd = Path.Combine(root, "users");
        await File.WriteAllLinesAsync(passwd, users.Select(u => $"{u}::65534:65534::{mail}/{u}::"));
        var config = (await File.ReadAllTextAsync(template))
            .Replace("@ROOT@", root)
            .Replace("port = 2424", $"port = {port}")
            .Replace("  driver = static\n  args = uid=nobody gid=nogroup home=" + root + "/mail/%n allow_all_users=no",
                     $"  driver = passwd-file\n  args = username_format=%n {passwd}");
        if (!config.Contains("passwd-file")) throw new InvalidOperationException("the shared Dovecot configuration changed: userdb not replaced");
        var file = Path.Combine(root, "dovecot.conf");
        await File.WriteAllTextAsync(file, config);
        var dovecot = new DovecotLmtp(bin, file, root, port);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(20), dovecot.Process);
        return dovecot;
    }

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

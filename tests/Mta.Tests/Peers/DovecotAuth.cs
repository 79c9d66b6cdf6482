namespace Mta.Tests.Peers;

/// <summary>
/// Dovecot's authentication service alone (Debian's dovecot-core), for Postfix's <c>smtpd_sasl_type = dovecot</c>: PLAIN
/// and LOGIN against a passwd-file of users, on a socket in a scratch folder.
/// </summary>
public sealed class DovecotAuth : PeerProcess
{
    /// <summary>The socket Postfix's <c>smtpd_sasl_path</c> names.</summary>
    public string Socket { get; }

    private DovecotAuth(string bin, string config, string socket) : base(bin, ["-F", "-c", config]) => Socket = socket;

    /// <summary>Starts it knowing <paramref name="users"/> (name and password).</summary>
    public static async Task<DovecotAuth> StartAsync(params (string User, string Password)[] users)
    {
        var bin = TestEnvironment.RequireTool("dovecot");
        var root = TestEnvironment.TempFolder("dovecot-auth");
        var passwd = Path.Combine(root, "users");
        await File.WriteAllLinesAsync(passwd, users.Select(u => $"{u.User}:{{PLAIN}}{u.Password}::::::"));
        var socket = Path.Combine(root, "auth");
        var config = Path.Combine(root, "dovecot.conf");
        await File.WriteAllTextAsync(config, $$"""
            protocols = none
            base_dir = {{root}}/run
            log_path = {{root}}/dovecot.log
            ssl = no
            auth_mechanisms = plain login
            passdb {
              driver = passwd-file
              args = {{passwd}}
            }
            userdb {
              driver = static
              args = uid=65534 gid=65534 home=/nonexistent
            }
            service auth {
              unix_listener {{socket}} {
                mode = 0666
              }
            }

            """);
        var auth = new DovecotAuth(bin, config, socket);
        if (!await TestEnvironment.EventuallyAsync(() => Task.FromResult(File.Exists(socket)), TimeSpan.FromSeconds(20)))
            throw new InvalidOperationException("dovecot's auth service did not start: " + auth.Output);
        return auth;
    }
}

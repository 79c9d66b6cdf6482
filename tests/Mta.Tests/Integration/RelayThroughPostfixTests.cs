using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// A private Postfix as the sending provider (issue #22): submission with STARTTLS and Dovecot's SASL on one port,
/// implicit TLS on another (<c>smtpd_tls_wrappermode</c>), AUTH only inside TLS, relaying to smtp-sink. Our delivery
/// logs in with PLAIN and with LOGIN, and a wrong password is deferred as Postfix's default soft bounce has it.
/// </summary>
[RunsLong(30)]
public sealed class RelayThroughPostfixTests
{
    private static Task<string> PasswordsAsync(params string[] lines) => RelayLoginTests.PasswordsAsync(lines);

    private static Task<MtaSystem> SenderAsync(string storage, string relayHost, string passwords, params (string Key, string? Value)[] more)
        => RelayLoginTests.SenderAsync(storage, relayHost, passwords, more);

    [SkippableFact]
    public async Task Postfix_with_dovecot_sasl_takes_plain_after_starttls_and_login_over_implicit_tls_and_a_wrong_password_waits()
    {
        var folder = TestEnvironment.TempFolder("provider-tls");
        TestCertificate.Write(Path.Combine(folder, "cert.pem"), Path.Combine(folder, "key.pem"), "provider.test");
        await using var auth = await DovecotAuth.StartAsync(("alice", "alice pass"), ("bob", "bob pass"));
        await using var sink = await SmtpSink.StartAsync();
        await using var postfix = await PostfixServer.StartAsync(tlsCertFile: Path.Combine(folder, "cert.pem"), tlsKeyFile: Path.Combine(folder, "key.pem"),
            relayHost: $"[127.0.0.1]:{sink.Port}", saslPath: auth.Socket);
        // The provider as providers are: no AUTH before TLS (smtpd_tls_auth_only), so a login can only go inside it.
        var (raw, _) = await RawSmtpClient.ConnectAsync(postfix.Port);
        await using (raw)
        {
            Assert.DoesNotContain("AUTH", await raw.CommandAsync("EHLO client.test"));
            Assert.StartsWith("5", await raw.CommandAsync("AUTH PLAIN " + Convert.ToBase64String("\0alice\0alice pass"u8)));
        }
        await using var storage1 = await Azurite.LeaseAsync();
        await using var storage2 = await Azurite.LeaseAsync();

        // PLAIN after STARTTLS on the submission port.
        await using var plain = await SenderAsync(storage1.ConnectionString, $"[127.0.0.1]:{postfix.Port}",
            await PasswordsAsync($"[127.0.0.1]:{postfix.Port} alice:alice pass"));
        // LOGIN over implicit TLS; bob's password is wrong.
        await using var login = await SenderAsync(storage2.ConnectionString, $"smtps:[127.0.0.1]:{postfix.WrapperPort}",
            await PasswordsAsync("@a.test alice:alice pass", "@b.test bob:wrong"),
            ("Mta:SmtpSaslMechanismFilter:0", "LOGIN"), ("Mta:SmtpSenderDependentAuthentication", "true"));

        await TestMail.SendAsync(plain.SmtpPort, TestMail.Message("app@a.test", "u1@far.test", "plain"));
        await TestMail.SendAsync(login.SmtpPort, TestMail.Message("app@a.test", "u2@far.test", "login"));
        await TestMail.SendAsync(login.SmtpPort, TestMail.Message("app@b.test", "u3@far.test", "wrong password"));

        var log = () => postfix.Output + string.Join("\n", plain.Log.Lines.Concat(login.Log.Lines));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(postfix.Received("u1@far.test") && postfix.Received("u2@far.test")
            && login.Log.Matching("to=<u3@far.test>", "status=deferred").Count > 0), TimeSpan.FromSeconds(60)), log());
        Assert.Contains("sasl_method=PLAIN, sasl_username=alice", postfix.Output);
        Assert.Contains("sasl_method=LOGIN, sasl_username=alice", postfix.Output);
        Assert.NotEmpty(login.Log.Matching("SASL authentication failed;", "said: 535"));
        Assert.False(postfix.Received("u3@far.test"));
        Assert.DoesNotContain(plain.Log.Lines.Concat(login.Log.Lines), l => l.Contains("alice pass") || l.Contains("wrong"));
    }
}

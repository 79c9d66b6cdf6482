using System.Text;
using Azure.Storage.Queues;
using Mta.Ingress.Auth;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The submission services (587 with STARTTLS, 465 with implicit TLS): TLS before AUTH, AUTH before
/// mail, certificates and users read from files and re-read when they change.
/// </summary>
[RunsLong(19)]
public sealed class SubmissionTests : IAsyncLifetime
{
    private AzuriteAccount _azurite = null!;
    private string _certFile = "", _keyFile = "", _usersFile = "";
    private string _thumbprint = "";
    private MtaSystem _mta = null!;
    private int _submission, _submissions;

    public async Task InitializeAsync()
    {
        _azurite = await Azurite.LeaseAsync();
        var folder = TestEnvironment.TempFolder("tls");
        _certFile = Path.Combine(folder, "tls.crt");
        _keyFile = Path.Combine(folder, "tls.key");
        _usersFile = Path.Combine(folder, "users");
        _thumbprint = TestCertificate.Write(_certFile, _keyFile);
        await File.WriteAllTextAsync(_usersFile, $"# submission users\nalice:{SaslUsers.Hash("s3cret pass")}\n");
        _submission = TestEnvironment.FreeTcpPort();
        _submissions = TestEnvironment.FreeTcpPort();
        _mta = await MtaSystem.StartAsync(_azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:SubmissionPort"] = _submission.ToString(),
            ["Ingress:SubmissionsPort"] = _submissions.ToString(),
            ["Ingress:TlsCertificateFile"] = _certFile,
            ["Ingress:TlsKeyFile"] = _keyFile,
            ["Ingress:UsersFile"] = _usersFile,
            ["Ingress:TrustedNetworks:0"] = "192.0.2.0/24", // loopback is not trusted here: relaying needs AUTH
        }, functions: false);
    }

    public async Task DisposeAsync()
    {
        await _mta.DisposeAsync();
        await _azurite.DisposeAsync();
    }

    /// <summary>What the ingress queued: cleanup runs there (the default), so delivery jobs.</summary>
    private Task<List<DeliveryJob>> QueuedAsync() => QueuePeek.DeliveryAsync(_azurite.ConnectionString);

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    [SkippableFact]
    public async Task Swaks_submits_with_starttls_and_auth_plain_and_with_implicit_tls_and_auth_login()
    {
        var swaks = TestEnvironment.RequireTool("swaks");
        var (exit, output) = await EndToEndTests.RunAsync(swaks, "--server", $"127.0.0.1:{_submission}", "--tls",
            "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "s3cret pass",
            "--from", "alice@example.org", "--to", "bob@far.test", "--timeout", "60");
        Assert.True(exit == 0, output);
        Assert.Contains("235 2.7.0 Authentication successful", output);
        Assert.Contains("250 2.0.0 Ok: queued as", output);

        (exit, output) = await EndToEndTests.RunAsync(swaks, "--server", $"127.0.0.1:{_submissions}", "--tlsc",
            "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "s3cret pass",
            "--from", "alice@example.org", "--to", "carol@far.test", "--timeout", "60");
        Assert.True(exit == 0, output);
        Assert.Contains("250 2.0.0 Ok: queued as", output);

        var queued = await QueuedAsync();
        Assert.Equal(2, queued.Count);
        Assert.Contains(queued, e => e.Recipients.SequenceEqual(["bob@far.test"]));
        Assert.Contains(queued, e => e.Recipients.SequenceEqual(["carol@far.test"]));
        // RFC 3848: encrypted and authenticated, and which TLS, in the Received header cleanup wrote.
        var received = queued.Select(j => Encoding.UTF8.GetString(j.Header ?? j.Content!).Split("\r\n\r\n")[0]).ToList();
        Assert.All(received, h => Assert.Contains("with ESMTPSA", h));
        Assert.All(received, h => Assert.Matches(@"TLSv1\.[23] with cipher TLS_", h));
    }

    [Fact]
    public async Task No_auth_before_tls_and_no_mail_before_auth()
    {
        var (smtp, greeting) = await RawSmtpClient.ConnectAsync(_submission);
        await using var _ = smtp;
        Assert.StartsWith("220", greeting);
        var ehlo = await smtp.CommandAsync("EHLO client.test");
        Assert.Contains("STARTTLS", ehlo);
        Assert.DoesNotContain("AUTH", ehlo);
        Assert.StartsWith("538 5.7.11", await smtp.CommandAsync("AUTH PLAIN " + B64("\0alice\0s3cret pass")));
        Assert.StartsWith("530 5.7.0", await smtp.CommandAsync("MAIL FROM:<alice@example.org>"));
    }

    [Fact]
    public async Task Commands_pipelined_after_starttls_are_discarded_and_auth_works_inside_tls()
    {
        var (tls, _) = await RawSmtpClient.ConnectAsync(_submission);
        await using var _ = tls;
        await tls.CommandAsync("EHLO client.test");
        // The injection: a command sent in plain text behind STARTTLS must not run inside TLS.
        await tls.WriteAsync("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n");
        Assert.StartsWith("220 2.0.0", await tls.ReplyAsync());
        var cert = await tls.HandshakeAsync();
        Assert.Equal(_thumbprint, cert.Thumbprint);

        await tls.WriteAsync("EHLO client.test\r\n");
        var ehlo = await tls.ReplyAsync();
        Assert.StartsWith("250-", ehlo); // the EHLO's reply, not one for the injected MAIL
        Assert.Contains("250 AUTH PLAIN LOGIN", ehlo);
        Assert.DoesNotContain("STARTTLS", ehlo);

        await tls.WriteAsync("MAIL FROM:<alice@example.org>\r\n");
        Assert.StartsWith("530 5.7.0", await tls.ReplyAsync()); // the session starts over: no MAIL in progress, no AUTH yet
        await tls.WriteAsync("AUTH PLAIN " + B64("\0alice\0wrong") + "\r\n");
        Assert.StartsWith("535 5.7.8", await tls.ReplyAsync());
        await tls.WriteAsync("AUTH PLAIN " + B64("bob\0alice\0s3cret pass") + "\r\n");
        Assert.StartsWith("535 5.7.8", await tls.ReplyAsync()); // acting as someone else is refused
        await tls.WriteAsync("AUTH LOGIN\r\n");
        Assert.StartsWith("334 VXNlcm5hbWU6", await tls.ReplyAsync());
        await tls.WriteAsync(B64("alice") + "\r\n");
        Assert.StartsWith("334 UGFzc3dvcmQ6", await tls.ReplyAsync());
        await tls.WriteAsync(B64("s3cret pass") + "\r\n");
        Assert.StartsWith("235 2.7.0", await tls.ReplyAsync());
        await tls.WriteAsync("MAIL FROM:<alice@example.org>\r\n");
        Assert.StartsWith("250 2.1.0", await tls.ReplyAsync());
        await tls.WriteAsync("RCPT TO:<dave@far.test>\r\n");
        Assert.StartsWith("250 2.1.5", await tls.ReplyAsync()); // authenticated: relaying allowed
        Assert.Empty(await QueuedAsync());
    }

    [Theory]
    [InlineData("response pipelined behind AUTH PLAIN", "EHLO client.test\r\n", "AUTH PLAIN\r\n{0}\r\n", "554 5.5.0")]
    [InlineData("AUTH with its initial response pipelined behind EHLO", "", "EHLO client.test\r\nAUTH PLAIN {0}\r\n", "554 5.5.0")]
    [InlineData("LOGIN name and password in one write", "EHLO client.test\r\n", "AUTH LOGIN {1}\r\n{2}\r\n", "554 5.5.0")]
    [InlineData("the response with a command pipelined behind it", "EHLO client.test\r\n|AUTH PLAIN\r\n", "{0}\r\nNOOP\r\n", "554 5.5.0")]
    public async Task Nothing_of_an_auth_exchange_is_ever_logged(string how, string first, string attack, string reply)
    {
        _ = how;
        const string password = "hunter2-in-the-log";
        await using var tls = await RawSmtpClient.StartTlsAsync(_submission);
        foreach (var step in first.Split('|', StringSplitOptions.RemoveEmptyEntries))
        {
            await tls.WriteAsync(step);
            await tls.ReplyAsync();
        }
        var plainResponse = B64("\0alice\0" + password);
        await tls.WriteAsync(string.Format(attack, plainResponse, B64("alice"), B64(password)));
        var replies = await tls.ReplyAsync();
        while (!replies.Contains(reply) && await tls.ReplyAsync() is { Length: > 0 } more) replies += more;
        Assert.Contains(reply, replies);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(_mta.Log.Matching("improper command pipelining").Count > 0),
            TimeSpan.FromSeconds(10)), string.Join("\n", _mta.Log.Lines));
        var log = string.Join("\n", _mta.Log.Lines);
        Assert.DoesNotContain(plainResponse, log);
        Assert.DoesNotContain(plainResponse.ToUpperInvariant(), log);
        Assert.DoesNotContain(B64(password), log);
        Assert.DoesNotContain(B64(password).ToUpperInvariant(), log);
        Assert.DoesNotContain(password, log);
    }

    [Fact]
    public async Task A_failed_login_logs_the_name_made_printable_and_never_the_password()
    {
        await using var tls = await RawSmtpClient.StartTlsAsync(_submission);
        await tls.WriteAsync("EHLO client.test\r\n");
        await tls.ReplyAsync();
        await tls.WriteAsync("AUTH PLAIN " + B64("\0mallory\r\nX-Forged: 1\u001b[2J\0not-the-password") + "\r\n");
        Assert.StartsWith("535 5.7.8", await tls.ReplyAsync());
        var line = Assert.Single(_mta.Log.Matching("authentication failed for mallory"));
        // Ordinal: a culture-aware search finds control characters everywhere (ICU ignores them).
        Assert.DoesNotContain("\r", line, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", line, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", string.Join("\n", _mta.Log.Lines));
    }

    [Fact]
    public async Task A_renewed_certificate_is_used_from_the_next_handshake()
    {
        async Task<string> ImplicitTlsThumbprint()
        {
            var (tls, greeting, cert) = await RawSmtpClient.ConnectTlsAsync(_submissions);
            await using var _ = tls;
            Assert.StartsWith("220 mta.test ESMTP", greeting);
            return cert.Thumbprint;
        }
        Assert.Equal(_thumbprint, await ImplicitTlsThumbprint());
        await Task.Delay(1100); // a new modification time, as a Secret update gives
        var renewed = TestCertificate.Write(_certFile, _keyFile);
        Assert.Equal(renewed, await ImplicitTlsThumbprint());
        Assert.NotEqual(_thumbprint, renewed);
    }

    [Fact]
    public async Task The_mx_port_offers_starttls_and_auth_only_inside_it()
    {
        var (smtp, _) = await RawSmtpClient.ConnectAsync(_mta.SmtpPort);
        await using var _ = smtp;
        var ehlo = await smtp.CommandAsync("EHLO client.test");
        Assert.Contains("STARTTLS", ehlo);
        Assert.DoesNotContain("AUTH", ehlo);
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<someone@example.org>")); // MX takes mail without AUTH
        Assert.StartsWith("554 5.7.1", await smtp.CommandAsync("RCPT TO:<victim@far.test>")); // but relays nothing
    }

    [Fact]
    public async Task The_mx_port_takes_no_logins_even_inside_tls_unless_asked()
    {
        async Task<(string Ehlo, string Auth)> TryAsync(MtaSystem mta)
        {
            await using var tls = await RawSmtpClient.StartTlsAsync(mta.SmtpPort);
            await tls.WriteAsync("EHLO client.test\r\n");
            var ehlo = await tls.ReplyAsync();
            await tls.WriteAsync("AUTH PLAIN " + B64("\0alice\0s3cret pass") + "\r\n");
            return (ehlo, await tls.ReplyAsync());
        }
        var (ehlo, auth) = await TryAsync(_mta);
        Assert.DoesNotContain("AUTH", ehlo);
        Assert.StartsWith("503 5.5.1", auth); // Postfix: smtpd_sasl_auth_enable = no on port 25

        await using var withAuth = await MtaSystem.StartAsync(_azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:TlsCertificateFile"] = _certFile, ["Ingress:TlsKeyFile"] = _keyFile, ["Ingress:UsersFile"] = _usersFile,
            ["Ingress:MxAuth"] = "true",
        }, functions: false);
        (ehlo, auth) = await TryAsync(withAuth);
        Assert.Contains("250 AUTH PLAIN LOGIN", ehlo);
        Assert.StartsWith("235 2.7.0", auth);
    }

    [Fact]
    public async Task Failed_logins_are_limited_per_client_and_per_name_and_a_limited_one_costs_no_hashing()
    {
        var port = TestEnvironment.FreeTcpPort();
        await using var mta = await MtaSystem.StartAsync(_azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:SubmissionPort"] = port.ToString(),
            ["Ingress:TlsCertificateFile"] = _certFile, ["Ingress:TlsKeyFile"] = _keyFile, ["Ingress:UsersFile"] = _usersFile,
            ["Ingress:AuthFailureLimit"] = "4", ["Ingress:AuthUserFailureLimit"] = "2",
        }, functions: false);
        Task<RawSmtpClient> SessionAsync() => TlsSessionAsync(port);

        await using var first = await SessionAsync();
        Assert.StartsWith("535", await LoginAsync(first, "alice", "guess1"));
        Assert.StartsWith("535", await LoginAsync(first, "alice", "guess2"));
        // The name has had its two failures: even its right password gets a temporary failure now, unhashed.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.StartsWith("454 4.7.0", await LoginAsync(first, "alice", "s3cret pass"));
        var limited = clock.Elapsed;
        Assert.StartsWith("535", await LoginAsync(first, "mallory", "x"));
        // Four failures from this client (the refused one does not count): its next AUTH closes the session.
        Assert.StartsWith("535", await LoginAsync(first, "trudy", "x"));
        var closing = await LoginAsync(first, "eve", "x");
        Assert.StartsWith("421 4.7.0", closing);
        // A new session from the same address meets the same limit.
        await using var second = await SessionAsync();
        Assert.StartsWith("421 4.7.0", await LoginAsync(second, "bob", "x"));
        Assert.True(limited < TimeSpan.FromMilliseconds(200) || limited < clock.Elapsed / 4, $"a limited attempt took {limited}");
        Assert.Single(mta.Log.Matching("for alice not tried: too many failures for this name lately"));
    }

    private static async Task<RawSmtpClient> TlsSessionAsync(int port)
    {
        var tls = await RawSmtpClient.StartTlsAsync(port);
        await tls.WriteAsync("EHLO client.test\r\n");
        await tls.ReplyAsync();
        return tls;
    }

    // A system of its own with a submission port (the class's certificate and users) and more settings, and a TLS session
    // there logged in as alice.
    private async Task<(MtaSystem Mta, RawSmtpClient Session)> LoggedInAsync(Dictionary<string, string?> more)
    {
        var port = TestEnvironment.FreeTcpPort();
        var settings = new Dictionary<string, string?>(more)
        {
            ["Ingress:SubmissionPort"] = port.ToString(),
            ["Ingress:TlsCertificateFile"] = _certFile, ["Ingress:TlsKeyFile"] = _keyFile, ["Ingress:UsersFile"] = _usersFile,
        };
        var mta = await MtaSystem.StartAsync(_azurite.ConnectionString, settings, functions: false);
        var tls = await RawSmtpClient.StartTlsAsync(port);
        await SayToAsync(tls, "EHLO client.test");
        Assert.StartsWith("235", await LoginAsync(tls, "alice", "s3cret pass"));
        return (mta, tls);
    }

    private static async Task<string> SayToAsync(RawSmtpClient tls, string line)
    {
        await tls.WriteAsync(line + "\r\n");
        return await tls.ReplyAsync();
    }

    private static async Task<string> LoginAsync(RawSmtpClient tls, string name, string password)
    {
        await tls.WriteAsync("AUTH PLAIN " + B64($"\0{name}\0{password}") + "\r\n");
        return await tls.ReplyAsync();
    }

    [Fact]
    public async Task Failed_logins_are_counted_for_the_cluster_so_a_second_replica_gives_a_guesser_one_more_try_not_a_second_limit()
    {
        var ports = new[] { TestEnvironment.FreeTcpPort(), TestEnvironment.FreeTcpPort() };
        var replicas = new List<MtaSystem>();
        foreach (var port in ports)
            replicas.Add(await MtaSystem.StartAsync(_azurite.ConnectionString, new Dictionary<string, string?>
            {
                ["Ingress:SubmissionPort"] = port.ToString(),
                ["Ingress:TlsCertificateFile"] = _certFile, ["Ingress:TlsKeyFile"] = _keyFile, ["Ingress:UsersFile"] = _usersFile,
                ["Ingress:AuthFailureLimit"] = "4", ["Ingress:AuthUserFailureLimit"] = "100",
            }, functions: false));
        try
        {
            await using var a = await TlsSessionAsync(ports[0]);
            await using var b = await TlsSessionAsync(ports[1]);
            for (var i = 0; i < 2; i++)
            {
                Assert.StartsWith("535", await LoginAsync(a, $"a{i}", "x"));
                Assert.StartsWith("535", await LoginAsync(b, $"b{i}", "x"));
            }
            // Four failures between them: the replica that counted the fourth refuses at once; the other learns it at
            // its next failure, and refuses from then on.
            Assert.StartsWith("421 4.7.0", await LoginAsync(b, "b9", "x"));
            Assert.StartsWith("535", await LoginAsync(a, "a8", "x"));
            Assert.StartsWith("421 4.7.0", await LoginAsync(a, "a9", "x"));
        }
        finally
        {
            foreach (var replica in replicas) await replica.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_login_sends_only_as_the_addresses_the_sender_login_map_gives_it()
    {
        var map = Path.Combine(TestEnvironment.TempFolder("logins"), "sender_logins");
        await File.WriteAllTextAsync(map, "alice@example.org alice\n@team.example alice, bob\n");
        var (mta, tls) = await LoggedInAsync(new() { ["Mta:SenderLoginMapsFile"] = map });
        await using var _ = mta;
        await using var _1 = tls;
        Task<string> SayAsync(string line) => SayToAsync(tls, line);
        Assert.StartsWith("553 5.7.1 <ceo@bank.example>: Sender address rejected: not owned by user alice", await SayAsync("MAIL FROM:<ceo@bank.example>"));
        Assert.StartsWith("553 5.7.1", await SayAsync("MAIL FROM:<bob@example.org>")); // no entry for it or its domain: nobody owns it
        Assert.StartsWith("250", await SayAsync("MAIL FROM:<alice@example.org>"));
        Assert.StartsWith("250", await SayAsync("RSET"));
        Assert.StartsWith("250", await SayAsync("MAIL FROM:<anyone@team.example>"));
        Assert.StartsWith("250", await SayAsync("RSET"));
        Assert.StartsWith("250", await SayAsync("MAIL FROM:<>"));
        Assert.Empty(mta.Log.Matching("warning: no Mta:SenderLoginMapsFile"));
        Assert.Single(_mta.Log.Matching("warning: no Mta:SenderLoginMapsFile")); // the class's system has none
    }

    [Fact]
    public async Task A_logged_in_sender_is_refused_a_suppressed_recipient_at_rcpt()
    {
        var (mta, tls) = await LoggedInAsync(new() { ["Mta:Suppression"] = "true" });
        await using var _ = mta;
        await using var _1 = tls;
        Task<string> SayAsync(string line) => SayToAsync(tls, line);
        var list = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Mta.Mail.Suppression.SuppressionList>(mta.MailServices);
        await list.AddAsync(null, "Gone@Example.net", "invalid_recipient", "550 5.1.1 no such user");
        Assert.StartsWith("250", await SayAsync("MAIL FROM:<alice@example.org>"));
        Assert.StartsWith("550 5.7.1 <gone@example.net>: Recipient address rejected: on the suppression list (invalid_recipient since ",
            await SayAsync("RCPT TO:<gone@example.net>")); // the list ignores case
        Assert.StartsWith("250", await SayAsync("RCPT TO:<here@example.net>"));
        Assert.Single(mta.Log.Matching("reject: RCPT from", "on the suppression list"));
    }

    [Fact]
    public async Task Submission_without_certificate_or_users_does_not_start()
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => MtaSystem.StartAsync(_azurite.ConnectionString,
            new Dictionary<string, string?> { ["Ingress:SubmissionPort"] = TestEnvironment.FreeTcpPort().ToString() }, functions: false));
        Assert.Contains("Ingress:TlsCertificateFile", e.Message);
    }
}

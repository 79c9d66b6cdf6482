using Mta.Ingress.Auth;
using Mta.Mail.Contracts;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Relaying through a provider that wants a login (issue #22), with the project's own submission port as the provider:
/// a relay host per sending domain (587 with STARTTLS, 465 with implicit TLS) and an account per sending domain (the
/// provider's sender login map refuses mail sent with another domain's account, so an accepted message proves which
/// account logged in), a wrong password (soft bounce as Postfix's default, or a bounce), and no login sent without TLS.
/// </summary>
[RunsLong(40)]
public sealed class RelayLoginTests
{
    /// <summary>
    /// An ingress with submission (587: STARTTLS, AUTH; 465: implicit TLS, AUTH) and users alice and bob, who own a.test
    /// and b.test.
    /// </summary>
    private static async Task<(MtaSystem Provider, int Submission)> ProviderAsync(string storage) => (await ProvidersAsync(storage)).Provider;

    private static async Task<((MtaSystem Provider, int Submission) Provider, int Submissions)> ProvidersAsync(string storage)
    {
        var folder = TestEnvironment.TempFolder("provider");
        string cert = Path.Combine(folder, "tls.crt"), key = Path.Combine(folder, "tls.key"), users = Path.Combine(folder, "users");
        TestCertificate.Write(cert, key);
        await File.WriteAllTextAsync(users, $"alice:{SaslUsers.Hash("alice pass")}\nbob:{SaslUsers.Hash("bob pass")}\n");
        var logins = Path.Combine(folder, "logins");
        await File.WriteAllTextAsync(logins, "@a.test alice\n@b.test bob\n");
        var (submission, submissions) = (TestEnvironment.FreeTcpPort(), TestEnvironment.FreeTcpPort());
        var settings = new Dictionary<string, string?>
        {
            ["Ingress:SubmissionPort"] = submission.ToString(),
            ["Ingress:SubmissionsPort"] = submissions.ToString(),
            ["Ingress:TlsCertificateFile"] = cert,
            ["Ingress:TlsKeyFile"] = key,
            ["Ingress:UsersFile"] = users,
            ["Mta:SenderLoginMapsFile"] = logins,
            ["Ingress:TrustedNetworks:0"] = "192.0.2.0/24", // the sending MTA is on loopback: it must log in to relay
        };
        return ((await MtaSystem.StartAsync(storage, settings, functions: false), submission), submissions);
    }

    internal static async Task<string> PasswordsAsync(params string[] lines)
    {
        var file = Path.Combine(TestEnvironment.TempFolder("sasl"), "sasl_passwd");
        await File.WriteAllLinesAsync(file, lines);
        return file;
    }

    private static Task<MtaSystem> SenderAsync(string storage, int submission, string passwords, params (string Key, string? Value)[] more)
        => SenderAsync(storage, $"[127.0.0.1]:{submission}", passwords, more);

    /// <summary>A whole MTA that relays to <paramref name="relayHost"/>, logging in with the accounts in <paramref name="passwords"/>.</summary>
    internal static Task<MtaSystem> SenderAsync(string storage, string relayHost, string passwords, params (string Key, string? Value)[] more)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mta:RelayHost"] = relayHost,
            ["Mta:SmtpSaslPasswordMapsFile"] = passwords,
            ["Mta:DeliverToInternalNetworks"] = "true",
        };
        foreach (var (k, v) in more) settings[k] = v;
        return MtaSystem.StartAsync(storage, settings);
    }

    [SkippableFact]
    public async Task Each_sending_domain_leaves_through_its_own_relay_host_with_its_own_account_inside_tls()
    {
        await using var storageA = await Azurite.LeaseAsync();
        await using var storageB = await Azurite.LeaseAsync();
        await using var senderStorage = await Azurite.LeaseAsync();
        var ((providerA, submissionA), _) = await ProvidersAsync(storageA.ConnectionString);
        await using var _a = providerA;
        var ((providerB, _), submissionsB) = await ProvidersAsync(storageB.ConnectionString);
        await using var _b = providerB;
        // a.test through provider A on 587 (STARTTLS), b.test through provider B on 465 (implicit TLS); the rest via the relay host.
        var relays = Path.Combine(TestEnvironment.TempFolder("relays"), "sender_relay");
        await File.WriteAllLinesAsync(relays, [$"@a.test [127.0.0.1]:{submissionA}", $"@b.test smtps:[127.0.0.1]:{submissionsB}"]);
        var passwords = await PasswordsAsync("# per sending domain", "@a.test alice:alice pass", "@b.test bob:bob pass");
        await using var sender = await SenderAsync(senderStorage.ConnectionString, "[127.0.0.1]:9", passwords,
            ("Mta:SmtpSenderDependentAuthentication", "true"), ("Mta:SenderDependentRelayHostMapsFile", relays));

        await TestMail.SendAsync(sender.SmtpPort, TestMail.Message("app@a.test", "u1@far.test", "from a"));
        await TestMail.SendAsync(sender.SmtpPort, TestMail.Message("app@b.test", "u2@far.test", "from b"));

        var log = () => string.Join("\n", sender.Log.Lines.Concat(providerA.Log.Lines).Concat(providerB.Log.Lines));
        List<DeliveryJob> atA = [], atB = [];
        Assert.True(await TestEnvironment.EventuallyAsync(async () => (atA = await QueuePeek.DeliveryAsync(storageA.ConnectionString)).Count == 1
            & (atB = await QueuePeek.DeliveryAsync(storageB.ConnectionString)).Count == 1, TimeSpan.FromSeconds(60)), log());
        // Each provider refuses mail from a domain its login does not own: an accepted message proves the account.
        Assert.Equal("app@a.test", atA[0].Sender);
        Assert.Equal("app@b.test", atB[0].Sender);
        Assert.Single(providerA.Log.Matching("sasl_method=PLAIN, sasl_username=alice"));
        Assert.Single(providerB.Log.Matching("sasl_method=PLAIN, sasl_username=bob"));
        Assert.Single(sender.Log.Matching($"SASL login as bob to 127.0.0.1[127.0.0.1]:{submissionsB}", "by PLAIN"));
        Assert.NotEmpty(sender.Log.Matching($"TLS connection established to 127.0.0.1[127.0.0.1]:{submissionsB}"));
        // The password is in no log line of any side.
        Assert.DoesNotContain(sender.Log.Lines.Concat(providerA.Log.Lines).Concat(providerB.Log.Lines), l => l.Contains("alice pass") || l.Contains("bob pass"));
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_refused_login_defers_by_default_and_bounces_with_the_servers_reply_without_soft_bounce(bool softBounce)
    {
        await using var providerStorage = await Azurite.LeaseAsync();
        await using var senderStorage = await Azurite.LeaseAsync();
        var (provider, submission) = await ProviderAsync(providerStorage.ConnectionString);
        await using var _ = provider;
        var passwords = await PasswordsAsync($"[127.0.0.1]:{submission} alice:wrong");
        await using var sender = await SenderAsync(senderStorage.ConnectionString, submission, passwords, ("Mta:SmtpSaslAuthSoftBounce", softBounce.ToString()),
            ("Mta:SmtpSaslMechanismFilter:0", "LOGIN"));

        await TestMail.SendAsync(sender.SmtpPort, TestMail.Message("sender@localhost", "u@far.test", "wrong password"));
        var outcome = softBounce ? "status=deferred" : "status=bounced";
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sender.Log.Matching("to=<u@far.test>", outcome).Count > 0),
            TimeSpan.FromSeconds(60)), string.Join("\n", sender.Log.Lines));
        Assert.NotEmpty(sender.Log.Matching("SASL authentication failed;", "server 127.0.0.1[127.0.0.1]:", "said: 535"));
        if (!softBounce)
        {
            Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sender.Maildir("sender").Length == 1), TimeSpan.FromSeconds(30)));
            var bounce = await File.ReadAllTextAsync(sender.Maildir("sender")[0]);
            Assert.Contains("535", bounce);
            Assert.DoesNotContain("wrong", bounce.Replace("wrong password", "")); // the subject is quoted; the password is not
        }
        Assert.Empty(await QueuePeek.DeliveryAsync(providerStorage.ConnectionString));
        Assert.DoesNotContain(sender.Log.Lines, l => l.Contains("alice:wrong"));
    }

    [SkippableFact]
    public async Task No_login_goes_to_a_next_hop_that_offers_auth_without_tls()
    {
        // A server that offers AUTH in plain text (our own never does) and notes every command it gets.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var commands = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var server = Task.Run(async () =>
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync();
                using var stream = client.GetStream();
                using var reader = new StreamReader(stream);
                await using var writer = new StreamWriter(stream) { NewLine = "\r\n", AutoFlush = true };
                await writer.WriteLineAsync("220 plain.test ESMTP");
                while (await reader.ReadLineAsync() is { } line)
                {
                    commands.Enqueue(line);
                    await writer.WriteLineAsync(line.StartsWith("EHLO") ? "250-plain.test\r\n250 AUTH PLAIN LOGIN" : line == "QUIT" ? "221 bye" : "250 ok");
                    if (line == "QUIT") break;
                }
            }
        });
        await using var senderStorage = await Azurite.LeaseAsync();
        var passwords = await PasswordsAsync($"[127.0.0.1]:{port} alice:alice pass");
        await using var sender = await SenderAsync(senderStorage.ConnectionString, port, passwords);

        await TestMail.SendAsync(sender.SmtpPort, TestMail.Message("app@a.test", "u@far.test", "no tls"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sender.Log.Matching("to=<u@far.test>", "status=deferred", "without TLS").Count > 0),
            TimeSpan.FromSeconds(60)), string.Join("\n", sender.Log.Lines));
        Assert.Contains(commands, c => c.StartsWith("EHLO"));
        Assert.DoesNotContain(commands, c => c.StartsWith("AUTH") || c.StartsWith("MAIL"));
    }

    /// <summary>
    /// A scripted next hop that offers AUTH XOAUTH2 (in plain text: the test names it in Mta:SmtpSaslPlaintextNextHops),
    /// checks the initial response's format (RFC-less but Google's and Microsoft's: <c>user=U^Aauth=Bearer T^A^A</c>,
    /// base64) against the token it expects now, and notes every token it was given.
    /// </summary>
    private sealed class OAuthServer : IDisposable
    {
        private readonly System.Net.Sockets.TcpListener _listener = new(System.Net.IPAddress.Loopback, 0);
        public int Port { get; }
        public string Expected { get; set; } = "";
        public System.Collections.Concurrent.ConcurrentQueue<string> Tokens { get; } = new();
        public System.Collections.Concurrent.ConcurrentQueue<string> Accepted { get; } = new();

        public OAuthServer()
        {
            _listener.Start();
            Port = ((System.Net.IPEndPoint)_listener.LocalEndpoint).Port;
            _ = Task.Run(async () => { while (true) await ServeAsync(await _listener.AcceptTcpClientAsync()); });
        }

        private async Task ServeAsync(System.Net.Sockets.TcpClient client)
        {
            using var _ = client;
            using var reader = new StreamReader(client.GetStream());
            await using var writer = new StreamWriter(client.GetStream()) { NewLine = "\r\n", AutoFlush = true };
            await writer.WriteLineAsync("220 oauth.test ESMTP");
            var authenticated = false;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("EHLO")) { await writer.WriteLineAsync("250-oauth.test\r\n250 AUTH XOAUTH2"); continue; }
                if (line.StartsWith("AUTH XOAUTH2 "))
                {
                    var decoded = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(line[13..]));
                    var m = System.Text.RegularExpressions.Regex.Match(decoded, "^user=alice\u0001auth=Bearer ([^\u0001]+)\u0001\u0001$");
                    Tokens.Enqueue(m.Success ? m.Groups[1].Value : "malformed");
                    authenticated = m.Success && m.Groups[1].Value == Expected;
                    if (authenticated) { await writer.WriteLineAsync("235 2.7.0 Accepted"); continue; }
                    await writer.WriteLineAsync("334 eyJzdGF0dXMiOiI0MDEifQ=="); // {"status":"401"}: the client answers with an empty line
                    await reader.ReadLineAsync();
                    await writer.WriteLineAsync("535 5.7.8 Username and Password not accepted");
                    continue;
                }
                if (line.StartsWith("MAIL") && !authenticated) { await writer.WriteLineAsync("530 5.7.0 Authentication required"); continue; }
                if (line == "DATA")
                {
                    await writer.WriteLineAsync("354 go on");
                    while (await reader.ReadLineAsync() is { } data && data != ".") { }
                    Accepted.Enqueue(Expected);
                    await writer.WriteLineAsync("250 2.0.0 Ok: queued");
                    return; // one message per connection: the next one logs in again, with the token of that moment

                }
                await writer.WriteLineAsync(line == "QUIT" ? "221 bye" : line == "RSET" || line == "NOOP" ? "250 ok" : "250 ok");
                if (line == "QUIT") return;
            }
        }

        public void Dispose() => _listener.Stop();
    }

    [SkippableFact]
    public async Task Xoauth2_sends_the_token_from_its_file_and_takes_a_new_one_when_the_file_is_replaced()
    {
        using var server = new OAuthServer { Expected = "token-one" };
        var token = Path.Combine(TestEnvironment.TempFolder("oauth"), "token");
        await File.WriteAllTextAsync(token, "token-one\n");
        var next = $"[127.0.0.1]:{server.Port}";
        await using var senderStorage = await Azurite.LeaseAsync();
        await using var sender = await SenderAsync(senderStorage.ConnectionString, server.Port, await PasswordsAsync($"{next} alice:file:{token}"),
            ("Mta:SmtpSaslMechanismFilter:0", "XOAUTH2"), ("Mta:SmtpSaslPlaintextNextHops:0", next));

        await TestMail.SendAsync(sender.SmtpPort, TestMail.Message("app@a.test", "u@far.test", "first"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(server.Accepted.Count == 1), TimeSpan.FromSeconds(60)),
            string.Join("\n", sender.Log.Lines));

        // The token is renewed (a sidecar writes the file): the next login uses the new one, no restart.
        server.Expected = "token-two";
        await File.WriteAllTextAsync(token, "token-two\n");
        File.SetLastWriteTimeUtc(token, DateTime.UtcNow.AddSeconds(5));
        await Task.Delay(TimeSpan.FromSeconds(1.2)); // the file's time stamp is looked at once a second
        await TestMail.SendAsync(sender.SmtpPort, TestMail.Message("app@a.test", "u@far.test", "second"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(server.Accepted.Count == 2), TimeSpan.FromSeconds(60)),
            string.Join("\n", sender.Log.Lines) + string.Join(",", server.Tokens));
        Assert.Contains("token-one", server.Tokens);
        Assert.Contains("token-two", server.Tokens);
        Assert.DoesNotContain(sender.Log.Lines, l => l.Contains("token-one") || l.Contains("token-two"));
    }
}

using System.Text;
using System.Text.RegularExpressions;
using Azure.Storage.Queues;
using MimeKit;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The delivery stage's SMTP client against real Postfix servers on loopback: per-recipient outcomes,
/// TLS levels and certificate checks, SMTPUTF8 negotiation and connection reuse.
/// </summary>
[RunsLong(110)]
public sealed class OutboundSmtpTests(OutboundSmtpTests.QueueFedSystem queueFed) : IClassFixture<OutboundSmtpTests.QueueFedSystem>
{
    /// <summary>
    /// The functions without an ingress, fed delivery jobs straight onto their queue, each naming its next hop: one for
    /// the tests that need no more (their jobs and log lines have ids of their own), started by the first that asks.
    /// </summary>
    public sealed class QueueFedSystem : IAsyncLifetime
    {
        private readonly Lazy<Task<(AzuriteAccount Azurite, MtaSystem Mta, QueueClient Delivery)>> _started = new(async () =>
        {
            var azurite = await Azurite.LeaseAsync();
            var mta = await MtaSystem.StartAsync(azurite.ConnectionString, ingress: false);
            var delivery = new QueueClient(azurite.ConnectionString, QueueNames.Delivery, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });
            await delivery.CreateIfNotExistsAsync();
            return (azurite, mta, delivery);
        });

        /// <summary>The system, started on first use.</summary>
        public async Task<MtaSystem> GetAsync() => (await _started.Value).Mta;

        /// <summary>Puts <paramref name="job"/> on the delivery queue.</summary>
        public async Task QueueAsync(Mta.Mail.Contracts.DeliveryJob job)
            => await (await _started.Value).Delivery.SendMessageAsync(Mta.Mail.Contracts.QueueJson.Serialize(job));

        /// <inheritdoc />
        public Task InitializeAsync() => Task.CompletedTask;

        /// <inheritdoc />
        public async Task DisposeAsync()
        {
            if (!_started.IsValueCreated) return;
            var (azurite, mta, _) = await _started.Value;
            await mta.DisposeAsync();
            await azurite.DisposeAsync();
        }
    }

    private static async Task<string> TransportMapAsync(params string[] lines)
    {
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllLinesAsync(map, lines);
        return map;
    }

    private static MimeMessage Message(string subject, params string[] to)
    {
        var m = TestMail.Message("sender@localhost", to[0], subject);
        foreach (var r in to.Skip(1)) m.To.Add(MailboxAddress.Parse(r));
        return m;
    }

    [SkippableFact]
    public async Task Postfix_per_recipient_replies_give_sent_deferred_and_bounced_over_opportunistic_tls()
    {
        var folder = TestEnvironment.TempFolder("postfix-tls");
        TestCertificate.Write(Path.Combine(folder, "cert.pem"), Path.Combine(folder, "key.pem"), "postfix.test");
        await using var postfix = await PostfixServer.StartAsync(new Dictionary<string, string>
        {
            ["defer@example.test"] = "450 4.2.0 Mailbox busy",
            ["full@example.test"] = "452 4.2.2 Mailbox full",
            ["reject@example.test"] = "550 5.1.1 No such user",
        }, Path.Combine(folder, "cert.pem"), Path.Combine(folder, "key.pem"));
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = await TransportMapAsync($"example.test smtp:[127.0.0.1]:{postfix.Port}"),
        });

        await TestMail.SendAsync(mta.SmtpPort, Message("three outcomes", "ok@example.test", "defer@example.test", "full@example.test", "reject@example.test"));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(postfix.Received("ok@example.test") && mta.Maildir("sender").Length == 1),
            TimeSpan.FromSeconds(60)), "no delivery or no bounce\n" + postfix.Output);
        var bounce = await File.ReadAllTextAsync(mta.Maildir("sender")[0]);
        Assert.Contains("Final-Recipient: rfc822; reject@example.test", bounce);
        Assert.Contains("Status: 5.1.1", bounce);
        Assert.Contains("Diagnostic-Code: smtp; 550 5.1.1 <reject@example.test>:", bounce);
        Assert.Contains("Recipient address rejected: No such user", bounce);
        Assert.DoesNotContain("Final-Recipient: rfc822; ok@example.test", bounce);
        Assert.DoesNotContain("Final-Recipient: rfc822; defer@example.test", bounce);
        Assert.False(postfix.Received("defer@example.test"));

        // One job waits for a retry (invisible until due); the log shows it is the deferred recipient's.
        var deferred = new QueueClient(azurite.ConnectionString, QueueNames.Deferred);
        Assert.Equal(1, (await deferred.GetPropertiesAsync()).Value.ApproximateMessagesCount);

        // Postfix-shaped log lines, one per recipient, with delays=a/b/c/d; TLS was used because Postfix offered it.
        var delays = new Regex(@"delays=\d+(\.\d+)?/\d+(\.\d+)?/\d+(\.\d+)?/\d+(\.\d+)?, ");
        var log = string.Join("\n", mta.Log.Lines);
        var sent = mta.Log.Matching("to=<ok@example.test>", "relay=127.0.0.1[127.0.0.1]:", "dsn=2.0.0", "status=sent (250 2.0.0 Ok: queued as");
        Assert.True(sent.Count == 1, log);
        Assert.Matches(delays, sent[0]);
        Assert.True(mta.Log.Matching("to=<defer@example.test>", "dsn=4.2.0", "status=deferred (450 4.2.0").Count == 1, log);
        Assert.True(mta.Log.Matching("to=<reject@example.test>", "dsn=5.1.1", "status=bounced (550 5.1.1").Count == 1, log);
        // Each failure's category (bounce classification), before status=: from the code, or "other" when it says nothing.
        Assert.True(mta.Log.Matching("to=<reject@example.test>", "category=invalid_recipient, status=bounced").Count == 1, log);
        Assert.True(mta.Log.Matching("to=<full@example.test>", "category=mailbox_full, status=deferred").Count == 1, log);
        Assert.True(mta.Log.Matching("to=<defer@example.test>", "category=other, status=deferred").Count == 1, log);
        Assert.Empty(mta.Log.Matching("to=<ok@example.test>", "category="));
        Assert.NotEmpty(mta.Log.Matching("Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:", "TLS"));
        Assert.Contains("TLS connection established from localhost[127.0.0.1]", postfix.Output);
    }

    [SkippableFact]
    public async Task Tls_policy_levels_verify_against_the_configured_ca_and_require_starttls()
    {
        var folder = TestEnvironment.TempFolder("tls-policy");
        var ca = TestCertificate.WriteAuthority(Path.Combine(folder, "ca.pem"));
        TestCertificate.WriteIssued(ca, Path.Combine(folder, "good.pem"), Path.Combine(folder, "good.key"), "mx.good.test");
        TestCertificate.Write(Path.Combine(folder, "bad.pem"), Path.Combine(folder, "bad.key"), "mx.bad.test"); // self-signed
        await using var dns = await Dnsmasq.StartAsync("--host-record=mx.good.test,127.0.0.1", "--host-record=mx.bad.test,127.0.0.1");
        await using var good = await PostfixServer.StartAsync(null, Path.Combine(folder, "good.pem"), Path.Combine(folder, "good.key"));
        await using var bad = await PostfixServer.StartAsync(null, Path.Combine(folder, "bad.pem"), Path.Combine(folder, "bad.key"));
        await using var plain = await SmtpSink.StartAsync();
        var policy = Path.Combine(folder, "tls_policy");
        await File.WriteAllLinesAsync(policy, [$"[mx.good.test]:{good.Port} verify", $"[mx.bad.test]:{bad.Port} verify", $"[127.0.0.1]:{plain.Port} encrypt"]);
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:DnsServers:0"] = dns.Server,
            ["Mta:TlsCaFile"] = ca.PemFile,
            ["Mta:TlsPolicyFile"] = policy,
            ["Mta:TransportMapFile"] = await TransportMapAsync(
                $"good.test smtp:[mx.good.test]:{good.Port}", $"bad.test smtp:[mx.bad.test]:{bad.Port}", $"plain.test smtp:[127.0.0.1]:{plain.Port}"),
        });

        await TestMail.SendAsync(mta.SmtpPort, Message("verified", "u@good.test"));
        await TestMail.SendAsync(mta.SmtpPort, Message("self-signed", "u@bad.test"));
        await TestMail.SendAsync(mta.SmtpPort, Message("no starttls", "u@plain.test"));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
            good.Received("u@good.test") && mta.Log.Matching("to=<u@bad.test>", "status=deferred").Count > 0
            && mta.Log.Matching("to=<u@plain.test>", "status=deferred").Count > 0), TimeSpan.FromSeconds(60)), string.Join("\n", mta.Log.Lines));
        Assert.NotEmpty(mta.Log.Matching($"Verified TLS connection established to mx.good.test[127.0.0.1]:{good.Port}"));
        Assert.NotEmpty(mta.Log.Matching("to=<u@bad.test>", "dsn=4.7.5", "Server certificate not verified", "untrusted issuer"));
        Assert.NotEmpty(mta.Log.Matching("to=<u@plain.test>", "dsn=4.7.4", "TLS is required, but was not offered by host"));
        Assert.False(bad.Received("u@bad.test"));
        Assert.Empty(plain.Dumps());
    }

    [SkippableFact]
    public async Task Smtputf8_mail_goes_to_a_server_that_offers_it_and_bounces_with_5_6_7_from_one_that_does_not()
    {
        await using var postfix = await PostfixServer.StartAsync();
        await using var sink = await SmtpSink.StartAsync(); // smtp-sink offers no SMTPUTF8
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = await TransportMapAsync($"utf8.test smtp:[127.0.0.1]:{postfix.Port}", $"ascii.test smtp:[127.0.0.1]:{sink.Port}"),
        });

        // MailKit sends MAIL FROM ... SMTPUTF8 because the ingress offers it and the addresses need it.
        await TestMail.SendAsync(mta.SmtpPort, Message("grüße", "jörg@utf8.test"));
        await TestMail.SendAsync(mta.SmtpPort, Message("grüße", "jörg@ascii.test"));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(postfix.Received("jörg@utf8.test") && mta.Maildir("sender").Length == 1),
            TimeSpan.FromSeconds(60)), postfix.Output + string.Join("\n", mta.Log.Lines));
        var bounce = await File.ReadAllTextAsync(mta.Maildir("sender")[0]);
        Assert.Contains("Status: 5.6.7", bounce);
        Assert.Contains("SMTPUTF8 is required, but was not offered by host", bounce);
        Assert.Empty(sink.Dumps());
    }

    [SkippableFact]
    public async Task A_connection_lost_after_the_final_dot_is_a_deferral_not_a_loss()
    {
        // smtp-sink reads the whole message and the dot, then hangs up without a reply: the outcome is unknown.
        await using var sink = await SmtpSink.StartAsync("-q", ".");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = await TransportMapAsync($"example.test smtp:[127.0.0.1]:{sink.Port}"),
        });

        await TestMail.SendAsync(mta.SmtpPort, Message("dropped", "a@example.test", "b@example.test"));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Log.Matching("status=deferred", "lost connection").Count == 2),
            TimeSpan.FromSeconds(60)), string.Join("\n", mta.Log.Lines));
        Assert.NotEmpty(mta.Log.Matching("to=<a@example.test>", "dsn=4.4.2", "status=deferred (4.4.2 lost connection with 127.0.0.1[127.0.0.1]"));
        // The job is put on the deferred queue just after its recipients are logged.
        var deferred = new QueueClient(azurite.ConnectionString, QueueNames.Deferred);
        Assert.True(await TestEnvironment.EventuallyAsync(async () => (await deferred.GetPropertiesAsync()).Value.ApproximateMessagesCount == 1,
            TimeSpan.FromSeconds(10)), "not deferred");
        Assert.Empty(mta.Maildir("sender"));
    }

    [SkippableFact]
    public async Task Dsn_requests_travel_to_a_dsn_capable_next_hop_and_are_answered_as_relayed_otherwise()
    {
        await using var capable = await SmtpSink.StartAsync();
        await using var plain = await SmtpSink.StartAsync("-N"); // no DSN offered
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = await TransportMapAsync($"capable.test smtp:[127.0.0.1]:{capable.Port}", $"plain.test smtp:[127.0.0.1]:{plain.Port}"),
        });

        var (smtp, _) = await RawSmtpClient.ConnectAsync(mta.SmtpPort);
        await using (smtp)
        {
            await smtp.CommandAsync("EHLO client.test");
            Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<sender@localhost> RET=HDRS ENVID=batch+2B7"));
            Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<a@capable.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Forwarded+2Bme@example.org"));
            Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<b@plain.test> NOTIFY=SUCCESS"));
            Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
            Assert.StartsWith("250", await smtp.CommandAsync("Subject: dsn relay\r\n\r\nbody\r\n."));
        }

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(capable.Dumps().Count == 1 && plain.Dumps().Count == 1 && mta.Maildir("sender").Length == 1),
            TimeSpan.FromSeconds(60)), string.Join("\n", mta.Log.Lines));
        var relayed = capable.Dumps()[0];
        Assert.Contains("RET=HDRS", relayed);
        Assert.Contains("ENVID=batch+2B7", relayed);
        Assert.Contains("NOTIFY=SUCCESS,FAILURE", relayed);
        Assert.Contains("ORCPT=rfc822;Forwarded+2Bme@example.org", relayed); // the client's ORCPT, unchanged (RFC 3461 §4.2)
        Assert.DoesNotContain("NOTIFY", plain.Dumps()[0]);

        // One report, for the next hop that could not carry the request: "relayed", not "delivered".
        await Task.Delay(2000);
        var report = (await File.ReadAllTextAsync(Assert.Single(mta.Maildir("sender")))).Replace("\r\n", "\n");
        Assert.Matches(@"Final-Recipient: rfc822; b@plain.test\nAction: relayed\nStatus: 2\.0\.0", report);
        Assert.DoesNotContain("a@capable.test", report);
    }

    [SkippableFact]
    public async Task Consecutive_jobs_to_one_destination_share_a_connection()
    {
        await using var postfix = await PostfixServer.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = await TransportMapAsync($"example.test smtp:[127.0.0.1]:{postfix.Port}"),
            ["Mta:SmtpConnectionCacheTimeLimitSeconds"] = "30", // the test waits for each delivery in turn
        });

        for (var i = 1; i <= 4; i++)
        {
            var rcpt = $"n{i}@example.test";
            await TestMail.SendAsync(mta.SmtpPort, Message("reuse " + i, rcpt));
            Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(postfix.Received(rcpt)), TimeSpan.FromSeconds(30)), postfix.Output);
        }

        // Postfix logs every connection; the peer's start-up probe is the one lost right after CONNECT.
        var sessions = Regex.Matches(postfix.Output, @"smtpd\[\d+\]: connect from localhost").Count
                       - Regex.Matches(postfix.Output, "lost connection after CONNECT").Count;
        Assert.True(sessions == 1, postfix.Output + string.Join("\n", mta.Log.Lines));
        // The worker's delivery line reaches the log over the host's RPC stream, so it can come after Postfix has the mail.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Log.Matching("to=<n4@example.test>", "status=sent").Count == 1),
            TimeSpan.FromSeconds(10)), string.Join("\n", mta.Log.Lines));
        Assert.Single(mta.Log.Matching("to=<n4@example.test>", "conn_use=4, "));
        Assert.Empty(mta.Log.Matching("to=<n1@example.test>", "conn_use="));
    }

    // Dot lines where they are hardest to get right: first in the message, alone, doubled, at the very end without a
    // line end, and in a 100 KB message exactly where the DATA writer's 32 KiB pieces begin, and one byte after, so the
    // stuffing must carry "at the start of a line" from one piece into the next.
    private static IReadOnlyList<string> DotLineMessages()
    {
        var big = new StringBuilder("Subject: big\r\n\r\n");
        foreach (var boundary in new[] { 32 * 1024, 64 * 1024 + 1, 96 * 1024 })
        {
            for (var room = boundary - 2 - big.Length; room > 0; room = boundary - 2 - big.Length)
                big.Append(room > 80 ? new string('x', 76) + "\r\n" : new string('x', room));
            big.Append("\r\n.dot line at a boundary\r\n");
        }
        return
        [
            ".a first line that is a dot line\r\nSubject: x\r\n\r\n.\r\n..two\r\nmiddle\r\n.\tdot and tab\r\n.\r\n",
            "Subject: x\r\n\r\nno dots at all\r\n",
            "Subject: x\r\n\r\nno line end at the end, and a dot line before\r\n.\r\nlast",
            "Subject: x\r\n\r\n...\r\n.",
            big.Append("end\r\n").ToString(),
        ];
    }

    [SkippableFact]
    public async Task Lines_beginning_with_a_dot_arrive_unchanged_wherever_they_are()
    {
        await using var sink = await SmtpSink.StartAsync();
        var mta = await queueFed.GetAsync();
        var messages = DotLineMessages();
        for (var n = 0; n < messages.Count; n++)
            await queueFed.QueueAsync(new Mta.Mail.Contracts.DeliveryJob
            {
                MessageId = $"DOTS{n}", JobId = $"DOTS{n}.0", BlobName = $"DOTS{n}", Sender = "a@sender.test", Recipients = [$"u{n}@example.test"],
                NextHop = new Mta.Mail.Contracts.NextHop { Transport = Mta.Mail.Contracts.Transport.Smtp, Host = "127.0.0.1", Port = sink.Port },
                ArrivalTime = DateTimeOffset.UtcNow, Content = Encoding.ASCII.GetBytes(messages[n]),
            });

        // The sink writes its dump before it answers, so the log lines are what say the transactions are over.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Log.Matching("DOTS", ": to=<u", "status=sent").Count == messages.Count),
            TimeSpan.FromSeconds(30)), string.Join("\n", mta.Log.Lines));
        // smtp-sink unstuffs, writes LF line ends after its own X- lines and an empty line after the message: each
        // message must be all there, as it was (a last line without its end gets one).
        var dumps = sink.Dumps();
        for (var n = 0; n < messages.Count; n++)
        {
            var dump = Assert.Single(dumps, d => d.Contains($"X-Rcpt-Args: <u{n}@example.test>"));
            var sent = messages[n].Replace("\r\n", "\n");
            Assert.EndsWith((sent.EndsWith('\n') ? sent : sent + "\n") + "\n", dump);
        }
    }

    [SkippableFact]
    public async Task What_a_queue_message_holds_goes_out_with_crlf_line_ends_only_so_a_lenient_next_hop_sees_one_message()
    {
        // A receiver that also ends lines at a bare CR or LF: <CR>.<CR><LF> and <LF>.<LF> would end its DATA, and the
        // rest would be read as commands. The queue message carries them as if the ingress had not refused them.
        await using var lenient = CountingSmtpServer.Start();
        var mta = await queueFed.GetAsync();
        var job = new Mta.Mail.Contracts.DeliveryJob
        {
            MessageId = "SMUG", JobId = "SMUG.0", BlobName = "SMUG", Sender = "a@sender.test", Recipients = ["u@example.test"],
            NextHop = new Mta.Mail.Contracts.NextHop { Transport = Mta.Mail.Contracts.Transport.Smtp, Host = "127.0.0.1", Port = lenient.Port },
            ArrivalTime = DateTimeOffset.UtcNow,
            Content = Encoding.ASCII.GetBytes("Subject: t\r\n\r\nline1\n.\nMAIL FROM:<x@y>\r\nline2\r.\r\nRCPT TO:<victim@far.test>\r\nend\r\n"),
        };
        await queueFed.QueueAsync(job);

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Log.Matching("SMUG: to=<u@example.test>", "status=sent").Count == 1),
            TimeSpan.FromSeconds(30)), string.Join("\n", mta.Log.Lines));
        await Task.Delay(500);
        Assert.Single(lenient.Messages);
        Assert.Equal(["MAIL FROM:<a@sender.test>"], lenient.Commands.Where(c => c.StartsWith("MAIL", StringComparison.Ordinal)));
        Assert.DoesNotContain(lenient.Commands, c => c.Contains("victim") || c.Contains("x@y"));
    }
}

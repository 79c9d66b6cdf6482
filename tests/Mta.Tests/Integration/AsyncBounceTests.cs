using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Asynchronous bounces and complaints (issue #23): mail from a bounce domain leaves with a VERP return path; Postfix,
/// as the next hop, takes it and bounces it later through its own bounce daemon back to the ingress; an ARF report
/// comes in too. Both become events, both addresses are suppressed, and the next message to them is dropped.
/// </summary>
[RunsLong(20)]
public sealed class AsyncBounceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task A_dsn_and_an_arf_report_sent_back_become_events_suppress_their_addresses_and_the_next_message_skips_them()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var storage = azurite.ConnectionString;
        var ingressPort = TestEnvironment.FreeTcpPort();
        // A Postfix relay takes mail for remote.test and passes it on to a second Postfix, which refuses gone@ (550 5.1.1);
        // the relay's bounce daemon then reports it, later, to the return path, through its relayhost: the ingress.
        await using var mailbox = await PostfixServer.StartAsync(new Dictionary<string, string> { ["gone@remote.test"] = "550 5.1.1 Mailbox has moved away" },
            hostname: "store.remote.test");
        await using var postfix = await PostfixServer.StartAsync(relayHost: $"[127.0.0.1]:{ingressPort}",
            moreMainCf: $"transport_maps = inline:{{remote.test=smtp:[127.0.0.1]:{mailbox.Port}}}");
        var map = Path.Combine(TestEnvironment.TempFolder("async-bounce"), "transport");
        await File.WriteAllTextAsync(map, $"remote.test smtp:[127.0.0.1]:{postfix.Port}\n");
        // Every function but Events: the events stay on their queue, to be read here.
        await using var mta = await MtaSystem.StartAsync(storage, new Dictionary<string, string?>
        {
            ["Ingress:Port"] = ingressPort.ToString(), ["Mta:TransportMapFile"] = map, ["Mta:BounceDomains:0"] = "bounces.acme.example",
            ["Mta:Events"] = "true", ["Mta:Suppression"] = "true", ["Mta:TagHeaders:0"] = "X-Campaign",
        }.Concat(MtaSystem.AllButEvents).ToDictionary());

        var first = TestMail.Message("news@bounces.acme.example", "gone@remote.test", "December");
        first.MessageId = "dec-2026.1@example.org";
        first.Headers.Add("X-Campaign", "dec-2026");
        await TestMail.SendAsync(ingressPort, first);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(postfix.Output.Contains("from=<news+gone=remote.test@bounces.acme.example>")), Timeout),
            "no VERP return path at the next hop: " + postfix.Output);
        Assert.True(await TestEnvironment.EventuallyAsync(async () => (await QueuePeek.EventsAsync(storage)).Any(e => e.Type == "AsyncBounce"), Timeout),
            "no AsyncBounce: " + string.Join('\n', mta.Log.Lines));
        await TestMail.SendAsync(ingressPort, Complaint("complainer@remote.test"), "abuse@isp.example");
        Assert.True(await TestEnvironment.EventuallyAsync(async () => (await QueuePeek.EventsAsync(storage)).Any(e => e.Type == "Complaint"), Timeout), "no Complaint");

        var events = await QueuePeek.EventsAsync(storage);
        var bounce = events.Single(e => e.Type == "AsyncBounce");
        Assert.Equal(("gone@remote.test", "news@bounces.acme.example", "5.1.1", "invalid_recipient"), (bounce.Recipient, bounce.Sender, bounce.EnhancedStatus, bounce.Category));
        Assert.Contains("Mailbox has moved away", bounce.Reply);
        Assert.Equal("<dec-2026.1@example.org>", bounce.MessageId); // from the headers the DSN quotes
        // The delivery to the relay: its events carry the Message-ID and the header's tag, Reception with them.
        foreach (var type in (string[])["Reception", "Delivery"])
        {
            var e = events.Single(e => e.Type == type);
            Assert.Equal(("<dec-2026.1@example.org>", "dec-2026"), (e.MessageId, e.Tags?["x-campaign"]));
        }
        var complaint = events.Single(e => e.Type == "Complaint");
        Assert.Equal(("complainer@remote.test", "complaint"), (complaint.Recipient, complaint.Category));
        Assert.StartsWith("feedback-type=abuse", complaint.Reply);
        // The worker's log lines come over the host's RPC stream and can trail the events it queued.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
            mta.Log.Matching("orig_to=<gone@remote.test>, status=returned (AsyncBounce 5.1.1 invalid_recipient").Count == 1), Timeout),
            string.Join('\n', mta.Log.Lines));

        // Neither address gets the next message; an auto-reply to the bounce domain is dropped, not delivered.
        var next = TestMail.Message("news@bounces.acme.example", "gone@remote.test", "January");
        next.Cc.Add(MimeKit.MailboxAddress.Parse("complainer@remote.test"));
        await TestMail.SendAsync(ingressPort, next);
        await TestMail.SendAsync(ingressPort, TestMail.Message("someone@remote.test", "news+someone=remote.test@bounces.acme.example", "Out of office"), "");
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Log.Matching("status=suppressed").Count == 2
            && mta.Log.Matching("status=discarded (not a delivery status notification").Count == 1), Timeout), string.Join('\n', mta.Log.Lines));
        Assert.Single(mta.Log.Matching("to=<gone@remote.test>, status=suppressed (invalid_recipient since"));
        Assert.Single(mta.Log.Matching("to=<complainer@remote.test>, status=suppressed (complaint since"));
        Assert.Equal(2, (await QueuePeek.EventsAsync(storage)).Count(e => e.Type == "Suppressed"));
    }

    // An ARF report (RFC 5965) as a mailbox provider's feedback loop sends it, to the bounce domain's fixed address.
    private static MimeKit.MimeMessage Complaint(string complainer)
    {
        var original = TestMail.Message("news@example.org", complainer, "December");
        var feedback = new MimeKit.MimePart("message", "feedback-report")
        {
            Content = new MimeKit.MimeContent(new MemoryStream(System.Text.Encoding.ASCII.GetBytes(
                "Feedback-Type: abuse\r\nUser-Agent: TestLoop/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <news+x=remote.test@bounces.acme.example>\r\n"))),
        };
        var report = new MimeKit.MultipartReport("feedback-report")
        {
            new MimeKit.TextPart("plain") { Text = "This is an abuse report." },
            feedback,
            new MimeKit.MessagePart { Message = original },
        };
        var message = TestMail.Message("abuse@isp.example", "fbl@bounces.acme.example", "Abuse report");
        message.Body = report;
        return message;
    }

    [SkippableFact]
    public async Task Xverp_from_a_trusted_client_gives_each_recipient_its_return_path_and_is_refused_to_others()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("xverp"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sink.Port}\n");
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = map, ["Ingress:TrustedNetworks:0"] = "127.0.0.1/32",
        });

        // Postfix's smtpd_authorized_verp_clients is $mynetworks: a client outside gets neither the offer nor the service.
        var (outsider, _) = await RawSmtpClient.ConnectAsync(System.Net.IPAddress.Loopback, mta.SmtpPort, System.Net.IPAddress.Parse("127.0.0.2"));
        await using (outsider)
        {
            Assert.DoesNotContain("XVERP", await outsider.CommandAsync("EHLO client.test"));
            Assert.StartsWith("550 5.7.1", await outsider.CommandAsync("MAIL FROM:<news@example.org> XVERP"));
        }
        var (client, _) = await RawSmtpClient.ConnectAsync(mta.SmtpPort);
        await using (client)
        {
            Assert.Matches(@"(?m)^250[ -]XVERP\r$", await client.CommandAsync("EHLO client.test"));
            Assert.StartsWith("501 5.5.4", await client.CommandAsync("MAIL FROM:<news@example.org> XVERP=@@"));
            Assert.StartsWith("250", await client.CommandAsync("MAIL FROM:<news@example.org> XVERP=-_"));
            Assert.StartsWith("250", await client.CommandAsync("RCPT TO:<one@example.test>"));
            Assert.StartsWith("250", await client.CommandAsync("RCPT TO:<two+tag@example.test>"));
            Assert.StartsWith("354", await client.CommandAsync("DATA"));
            Assert.StartsWith("250", await client.CommandAsync("Subject: xverp\r\n\r\nbody\r\n."));
        }
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count == 2), Timeout), string.Join('\n', mta.Log.Lines));
        Assert.Equal(["X-Mail-Args: <news-one_example.test@example.org>", "X-Mail-Args: <news-two+tag_example.test@example.org>"],
            sink.Dumps().Select(d => d.Split('\n').Single(l => l.StartsWith("X-Mail-Args:")).Trim()).Order());
    }
}

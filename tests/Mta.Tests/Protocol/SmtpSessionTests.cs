using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Protocol;

/// <summary>
/// The ingress's SMTP dialogue, session by session over in-memory pipes: replies, pipelining, limits, relay control,
/// smuggling under DATA and BDAT, deadlines. What storage, cleanup and the listener add is in
/// <c>Integration/SmtpProtocolTests</c>.
/// </summary>
public sealed class SmtpSessionTests
{
    private static Task<InMemoryIngress> IngressAsync(Dictionary<string, string?>? settings = null) => InMemoryIngress.StartAsync(settings);

    [Fact]
    public async Task Pipelined_transaction_gets_every_reply_in_order()
    {
        await using var mta = await IngressAsync();
        var (smtp, greeting) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.StartsWith("220 mta.test ESMTP", greeting);

        var ehlo = await smtp.CommandAsync("EHLO client.test");
        Assert.Contains("250-PIPELINING", ehlo);
        Assert.Contains("250-SIZE 10240000", ehlo);
        Assert.Contains("250-ENHANCEDSTATUSCODES", ehlo);
        Assert.Contains("250-DSN", ehlo);
        Assert.Contains("250-SMTPUTF8", ehlo);
        Assert.Contains("250-CHUNKING", ehlo);
        Assert.EndsWith("250 XVERP\r\n", ehlo); // loopback is a trusted network: it may ask for VERP

        await smtp.WriteAsync("MAIL FROM:<a@sender.test>\r\nRCPT TO:<one@localhost>\r\nRCPT TO:<two@far.test>\r\nDATA\r\n");
        Assert.StartsWith("250 2.1.0", await smtp.ReplyAsync());
        Assert.StartsWith("250 2.1.5", await smtp.ReplyAsync());
        Assert.StartsWith("250 2.1.5", await smtp.ReplyAsync()); // loopback is a trusted network
        Assert.StartsWith("354", await smtp.ReplyAsync());
        await smtp.WriteAsync("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        var queued = await smtp.ReplyAsync();
        Assert.Matches(@"^250 2\.0\.0 Ok: queued as [0-9A-F]{16}\r\n$", queued);
        Assert.StartsWith("221", await smtp.ReplyAsync());

        var envelope = Assert.Single(await mta.QueuedAsync());
        Assert.Equal(queued.Trim()[^16..], envelope.Id);
        Assert.Equal("a@sender.test", envelope.Sender);
        Assert.Equal(["one@localhost", "two@far.test"], envelope.Recipients);
        Assert.Equal("client.test", envelope.Helo);
        Assert.Equal("127.0.0.1", envelope.ClientAddress);
        Assert.Equal("Subject: pipelined\r\n\r\nbody\r\n".Length, envelope.Size);
        // Small: the bytes travel in the queue message, no blob (one storage request for the ingress).
        Assert.Equal("Subject: pipelined\r\n\r\nbody\r\n", System.Text.Encoding.ASCII.GetString(envelope.Content!));
    }

    [Fact]
    public async Task Unicode_addresses_need_smtputf8_and_are_carried_with_it()
    {
        await using var mta = await IngressAsync();
        var (smtp, _) = await mta.ConnectAsync();
        await using var __ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        Assert.StartsWith("553 5.6.7", await smtp.CommandAsync("MAIL FROM:<jörg@sender.test>"));
        Assert.StartsWith("250 2.1.0", await smtp.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.StartsWith("553 5.6.7", await smtp.CommandAsync("RCPT TO:<jörg@localhost>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RSET"));
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("MAIL FROM:<jörg@sender.test> SMTPUTF8=yes"));
        Assert.StartsWith("250 2.1.0", await smtp.CommandAsync("MAIL FROM:<jörg@sender.test> SMTPUTF8"));
        Assert.StartsWith("250 2.1.5", await smtp.CommandAsync("RCPT TO:<δοκιμή@localhost>"));
        Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
        Assert.StartsWith("250 2.0.0", await smtp.CommandAsync("Subject: Grüße\r\n\r\nbody\r\n."));

        var envelope = Assert.Single(await mta.QueuedAsync());
        Assert.True(envelope.SmtpUtf8);
        Assert.Equal("jörg@sender.test", envelope.Sender);
        Assert.Equal(["δοκιμή@localhost"], envelope.Recipients);
        Assert.Equal("UTF8SMTP", envelope.Protocol);
    }

    [Fact]
    public async Task Untrusted_clients_cannot_relay_by_any_trick()
    {
        await using var mta = await IngressAsync(new() { ["Ingress:TrustedNetworks:0"] = "192.0.2.0/24" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<a@sender.test>"));
        foreach (var rcpt in new[] { "victim@far.test", "victim%far.test@localhost", "far.test!victim@localhost",
                     "@localhost:victim@far.test", "\"victim@far.test\"@localhost", "victim@[127.0.0.1]" })
            Assert.StartsWith("554 5.7.1", await smtp.CommandAsync($"RCPT TO:<{rcpt}>"));
        Assert.StartsWith("250 2.1.5", await smtp.CommandAsync("RCPT TO:<user@LocalHost>"));
        Assert.StartsWith("250 2.1.5", await smtp.CommandAsync("RCPT TO:<Postmaster>"));
    }

    [Fact]
    public async Task Unknown_local_users_are_refused_at_rcpt()
    {
        var table = Path.Combine(TestEnvironment.TempFolder("recipients"), "local-recipients");
        await File.WriteAllTextAsync(table, "# users\nalice\nBob\n");
        await using var mta = await IngressAsync(new() { ["Mta:LocalRecipientsFile"] = table });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        await smtp.CommandAsync("MAIL FROM:<a@sender.test>");
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<alice@localhost>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<bob@LOCALHOST>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<postmaster@localhost>"));
        Assert.StartsWith("550 5.1.1 <mallory@localhost>", await smtp.CommandAsync("RCPT TO:<mallory@localhost>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<anyone@far.test>")); // not local: the table does not apply

        // The table is read again when it changes.
        await Task.Delay(1100);
        await File.AppendAllTextAsync(table, "mallory\n");
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<mallory@localhost>"));
    }

    [Fact]
    public async Task Unknown_addresses_in_relay_domains_are_refused_at_rcpt_with_a_relay_recipient_table()
    {
        var table = Path.Combine(TestEnvironment.TempFolder("relay-recipients"), "relay-recipients");
        await File.WriteAllTextAsync(table, "# relay_recipient_maps\nknown@relay.test\n@whole.test\n");
        await using var mta = await IngressAsync(new()
        {
            ["Ingress:RelayDomains:0"] = "relay.test", ["Ingress:RelayDomains:1"] = "whole.test", ["Ingress:RelayRecipientsFile"] = table,
            ["Ingress:TrustedNetworks:0"] = "192.0.2.0/24",
        });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        await smtp.CommandAsync("MAIL FROM:<a@sender.test>");
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<Known@relay.test>"));
        Assert.StartsWith("550 5.1.1 <unknown@relay.test>", await smtp.CommandAsync("RCPT TO:<unknown@relay.test>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<anyone@whole.test>"));
        Assert.StartsWith("554 5.7.1", await smtp.CommandAsync("RCPT TO:<anyone@far.test>")); // not a relay domain at all
        Assert.Empty(mta.Log.Matching("warning: no Ingress:RelayRecipientsFile"));

        await Task.Delay(1100);
        await File.AppendAllTextAsync(table, "unknown@relay.test\n"); // read again when it changes
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<unknown@relay.test>"));
    }

    [Fact]
    public async Task Message_size_is_enforced_when_declared_and_when_sent()
    {
        await using var mta = await IngressAsync(new() { ["Ingress:MessageSizeLimit"] = "1000" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.Contains("SIZE 1000", await smtp.CommandAsync("EHLO client.test"));
        Assert.StartsWith("552 5.3.4", await smtp.CommandAsync("MAIL FROM:<a@sender.test> SIZE=1001"));
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<a@sender.test> SIZE=999"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<user@localhost>"));
        Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
        await smtp.WriteAsync(string.Concat(Enumerable.Repeat(new string('x', 98) + "\r\n", 20)) + ".\r\n");
        Assert.StartsWith("552 5.3.4", await smtp.ReplyAsync());
        // The session goes on, and nothing was queued.
        Assert.StartsWith("250", await smtp.CommandAsync("NOOP"));
        Assert.Empty(await mta.QueuedAsync());
    }

    public static TheoryData<string> FakeEndsOfData => ["\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r\n.\n", "\r.\r", "\n.\r", "\r\n\x00.\r\n"];

    [Theory]
    [MemberData(nameof(FakeEndsOfData))]
    public async Task A_fake_end_of_data_never_ends_the_message_nor_lets_a_second_transaction_through(string fake)
    {
        await using var mta = await IngressAsync();
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.StartsWith("354", await smtp.StartDataAsync());
        // The classic smuggling payload: a fake end, then a whole second transaction, pipelined.
        await smtp.WriteAsync("Subject: a\r\n\r\nfirst" + fake + "MAIL FROM:<evil@sender.test>\r\nRCPT TO:<victim@far.test>\r\nDATA\r\n"
            + "Subject: smuggled\r\n\r\nx\r\n.\r\n");
        var reply = await smtp.ReplyAsync();
        // Exactly one reply for everything: refused when it has a bare CR or LF, else one message with it all inside.
        var bare = fake.Replace("\r\n", "").Contains('\r') || fake.Replace("\r\n", "").Contains('\n');
        Assert.StartsWith(bare ? "550 5.5.2" : "250 2.0.0", reply);
        Assert.StartsWith("221", await smtp.CommandAsync("QUIT"));

        var queued = await mta.QueuedAsync();
        Assert.DoesNotContain(queued, e => e.Sender == "evil@sender.test" || e.Recipients.Contains("victim@far.test"));
        Assert.Equal(bare ? 0 : 1, queued.Count);
    }

    [Fact]
    public async Task Bare_line_ends_are_taken_as_crlf_when_normalizing()
    {
        await using var mta = await IngressAsync(new() { ["Ingress:BareLineEndings"] = "normalize" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        await smtp.StartDataAsync();
        await smtp.WriteAsync("Subject: a\n\nfirst\n.\nMAIL FROM:<evil@sender.test>\r\n.\r\n");
        Assert.StartsWith("250 2.0.0", await smtp.ReplyAsync());
        var envelope = Assert.Single(await mta.QueuedAsync());
        Assert.Equal("Subject: a\r\n\r\nfirst\r\n.\r\nMAIL FROM:<evil@sender.test>\r\n".Length, envelope.Size);
    }

    [Fact]
    public async Task Clients_that_talk_out_of_turn_are_disconnected()
    {
        await using var mta = await IngressAsync();
        // Commands sent together where each must wait for its reply (no EHLO yet): 554 and goodbye.
        var (early, _) = await mta.ConnectAsync();
        await using (early)
        {
            await early.WriteAsync("HELO client.test\r\nMAIL FROM:<a@sender.test>\r\n");
            Assert.StartsWith("250", await early.ReplyAsync());
            Assert.StartsWith("554 5.5.0 Error: SMTP protocol synchronization", await early.ReplyAsync());
            Assert.True(await early.ClosedAsync());
        }
        // Message content sent with DATA, without waiting for 354.
        var (eager, _) = await mta.ConnectAsync();
        await using (eager)
        {
            await eager.CommandAsync("EHLO client.test");
            await eager.WriteAsync("MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@localhost>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n");
            Assert.StartsWith("250", await eager.ReplyAsync());
            Assert.StartsWith("250", await eager.ReplyAsync());
            Assert.StartsWith("354", await eager.ReplyAsync());
            Assert.StartsWith("554 5.5.0", await eager.ReplyAsync());
            Assert.True(await eager.ClosedAsync());
        }
        Assert.Empty(await mta.QueuedAsync());
    }

    [Fact]
    public async Task Invalid_helo_names_and_junk_commands_count_against_the_client()
    {
        // Not from a trusted network: no address is exempt here.
        await using var mta = await IngressAsync(new() { ["Ingress:TrustedNetworks:0"] = "192.0.2.0/24", ["Ingress:JunkCommandLimit"] = "3", ["Ingress:HardErrorLimit"] = "3" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.StartsWith("501 5.5.2 <bad_name!>: Helo command rejected: Invalid name", await smtp.CommandAsync("EHLO bad_name!"));
        Assert.StartsWith("501 5.5.2", await smtp.CommandAsync("EHLO 192.0.2.1")); // an address must be a literal
        Assert.StartsWith("250", await smtp.CommandAsync("EHLO [192.0.2.1]"));
        for (var i = 0; i < 3; i++) Assert.StartsWith("250", await smtp.CommandAsync("NOOP"));
        // The fourth junk command is one error too many (two HELO errors before it).
        Assert.StartsWith("250", await smtp.CommandAsync("NOOP"));
        Assert.StartsWith("421 4.7.0", await smtp.ReplyAsync());
    }

    [Fact]
    public async Task Sequence_errors_limits_and_the_hard_error_limit()
    {
        await using var mta = await IngressAsync(new() { ["Ingress:RecipientLimit"] = "2", ["Ingress:HardErrorLimit"] = "6" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.StartsWith("503 5.5.1", await smtp.CommandAsync("MAIL FROM:<a@sender.test>"));       // 1: no EHLO
        Assert.StartsWith("250", await smtp.CommandAsync("EHLO client.test"));
        Assert.StartsWith("503 5.5.1", await smtp.CommandAsync("RCPT TO:<user@localhost>"));        // 2: no MAIL
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<>"));                           // null sender is fine
        Assert.StartsWith("554 5.5.1", await smtp.CommandAsync("DATA"));                            // 3: no recipients
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<u1@localhost>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<u2@localhost>"));
        Assert.StartsWith("452 4.5.3", await smtp.CommandAsync("RCPT TO:<u3@localhost>"));         // 4: past the limit counts
        Assert.StartsWith("500 5.5.2", await smtp.CommandAsync("NOOP " + new string('x', 600)));   // 5: line too long
        Assert.StartsWith("252", await smtp.CommandAsync("VRFY user"));
        Assert.StartsWith("502 5.5.2", await smtp.CommandAsync("TURN"));                            // 6: hard limit reached
        Assert.StartsWith("421 4.7.0", await smtp.ReplyAsync());
        Assert.Equal("", await smtp.ReplyAsync()); // closed
    }

    [Theory]
    [InlineData("reject")]
    [InlineData("normalize")]
    public async Task Bdat_chunks_meet_the_same_bare_line_end_and_line_length_policy_as_data(string policy)
    {
        await using var mta = await IngressAsync(new() { ["Ingress:BareLineEndings"] = policy });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        async Task<string> SendAsync(params string[] chunks)
        {
            await smtp.WriteAsync("MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@localhost>\r\n" + string.Concat(chunks.Select((c, i) =>
                $"BDAT {System.Text.Encoding.UTF8.GetByteCount(c)}{(i == chunks.Length - 1 ? " LAST" : "")}\r\n{c}")));
            string reply;
            for (var n = 0; ; n++) // MAIL, RCPT, then one reply per chunk: the last one is the message's
            {
                reply = await smtp.ReplyAsync();
                if (n == chunks.Length + 1) return reply;
            }
        }

        // A CRLF split across two chunks is a CRLF, not a bare CR and a bare LF.
        Assert.StartsWith("250 2.0.0 Ok: queued", await SendAsync("Subject: split\r", "\n\r\nbody\r\n"));
        Assert.Equal("Subject: split\r\n\r\nbody\r\n", System.Text.Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!));

        // The smuggling sample: under DATA it gets 550 5.5.2; under BDAT the same, or the same normalization.
        const string smuggle = "Subject: t\r\n\r\nline1\n.\nMAIL FROM:<x@y>\r\nline2\r.\r\nend\r\n";
        var reply = await SendAsync(smuggle[..20], smuggle[20..]);
        if (policy == "reject")
        {
            Assert.StartsWith("550 5.5.2", reply);
            Assert.Single(await mta.QueuedAsync());
        }
        else
        {
            Assert.StartsWith("250 2.0.0 Ok: queued", reply);
            var queued = await mta.QueuedAsync();
            Assert.Equal(2, queued.Count);
            Assert.Contains(queued, e => System.Text.Encoding.ASCII.GetString(e.Content!) ==
                "Subject: t\r\n\r\nline1\r\n.\r\nMAIL FROM:<x@y>\r\nline2\r\n.\r\nend\r\n");
        }
        // A bare CR as the very last octet is bare too; and a line over 1000 octets is refused as under DATA.
        Assert.StartsWith(policy == "reject" ? "550 5.5.2" : "250 2.0.0", await SendAsync("Subject: cr\r\n\r\nend\r"));
        Assert.StartsWith("500 5.5.2", await SendAsync("Subject: long\r\n\r\n" + new string('x', 600), new string('y', 500) + "\r\n"));
    }

    [Fact]
    public async Task Bdat_chunks_are_taken_as_octets_pipelined_and_refused_ones_are_still_read()
    {
        await using var mta = await IngressAsync(new() { ["Ingress:MessageSizeLimit"] = "200" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.Contains("CHUNKING", await smtp.CommandAsync("EHLO client.test"));

        // A refused chunk (no MAIL yet) is read and dropped: its bytes are not taken as commands.
        await smtp.WriteAsync("BDAT 12\r\nQUIT\r\nQUIT\r\n"); // 12 octets of chunk
        Assert.StartsWith("503 5.5.1", await smtp.ReplyAsync());
        Assert.StartsWith("250", await smtp.CommandAsync("NOOP"));

        const string part1 = "Subject: chunks\r\n\r\n.\r\n";     // a lone dot is content under BDAT
        const string part2 = "MAIL FROM:<x@y>\r\nend\r\n";
        await smtp.WriteAsync("MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@localhost>\r\n"
            + $"BDAT {part1.Length}\r\n{part1}BDAT {part2.Length} LAST\r\n{part2}");
        Assert.StartsWith("250 2.1.0", await smtp.ReplyAsync());
        Assert.StartsWith("250 2.1.5", await smtp.ReplyAsync());
        Assert.StartsWith($"250 2.0.0 Ok: {part1.Length} octets", await smtp.ReplyAsync());
        Assert.StartsWith("250 2.0.0 Ok: queued as", await smtp.ReplyAsync());
        var envelope = Assert.Single(await mta.QueuedAsync());
        Assert.Equal(part1.Length + part2.Length, envelope.Size);

        // Over the size limit: refused, nothing queued, and the session goes on.
        await smtp.WriteAsync($"MAIL FROM:<a@sender.test>\r\nRCPT TO:<user@localhost>\r\nBDAT 300 LAST\r\n{new string('x', 300)}");
        Assert.StartsWith("250", await smtp.ReplyAsync());
        Assert.StartsWith("250", await smtp.ReplyAsync());
        Assert.StartsWith("552 5.3.4", await smtp.ReplyAsync());
        Assert.StartsWith("250", await smtp.CommandAsync("NOOP"));
        Assert.Single(await mta.QueuedAsync());

        // A size that cannot be read leaves no way to find the next command: the session ends.
        var bad = await smtp.CommandAsync("BDAT lots");
        Assert.StartsWith("501 5.5.4", bad);
        Assert.Contains("421 4.7.0", bad + await smtp.ReplyAsync());
    }

    [Fact]
    public async Task A_slow_drip_in_data_is_cut_off_at_the_minimum_data_rate()
    {
        await using var mta = await IngressAsync(new() { ["Ingress:TimeoutSeconds"] = "3", ["Ingress:MinDataRate"] = "100" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.StartsWith("354", await smtp.StartDataAsync());
        // 10 octets a second: every read comes well within the 3 s timeout, but the message as a whole
        // may take only 3 s + size/100 — the drip falls behind and the session is closed.
        var started = DateTime.UtcNow;
        var reply = "";
        var replyTask = smtp.ReplyAsync();
        for (var i = 0; i < 30 && !replyTask.IsCompleted; i++)
        {
            try { await smtp.WriteAsync("0123456\r\n"); } catch (IOException) { break; }
            await Task.Delay(1000);
        }
        reply = await replyTask;
        Assert.StartsWith("421 4.4.2", reply);
        Assert.InRange((DateTime.UtcNow - started).TotalSeconds, 2.5, 10);
        Assert.Empty(await mta.QueuedAsync());
    }

    [Fact]
    public async Task A_command_trickled_in_a_byte_at_a_time_still_has_one_deadline()
    {
        await using var mta = await IngressAsync(new() { ["Ingress:TimeoutSeconds"] = "2" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.StartsWith("250", await smtp.CommandAsync("EHLO client.test"));
        // Every byte well within the 2 s per-read timeout, the line never ending: Postfix's per-record deadline.
        var started = DateTime.UtcNow;
        var replyTask = smtp.ReplyAsync();
        foreach (var c in "NOOP NOOP NOOP")
        {
            if (replyTask.IsCompleted) break;
            try { await smtp.WriteAsync(c.ToString()); } catch (IOException) { break; }
            await Task.Delay(700);
        }
        Assert.StartsWith("421 4.4.2", await replyTask);
        Assert.InRange((DateTime.UtcNow - started).TotalSeconds, 1.5, 6);
    }

    [Fact]
    public async Task A_domain_is_decided_on_in_the_form_it_is_delivered_to()
    {
        // U+212A KELVIN SIGN folds to "k" in one .NET comparison and not in another; IDNA maps it to "k" as DNS will.
        var table = Path.Combine(TestEnvironment.TempFolder("local-recipients"), "local-recipients");
        await File.WriteAllTextAsync(table, "kate\n");
        await using var mta = await IngressAsync(new()
        {
            ["Ingress:RelayDomains:0"] = "kelvin.test", ["Ingress:TrustedNetworks:0"] = "192.0.2.0/24", ["Mta:LocalRecipientsFile"] = table,
        });
        var (smtp, _) = await mta.ConnectAsync();
        await using var _ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<a@sender.test> SMTPUTF8"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<x@\u212Aelvin.test>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<KATE@localhost>"));
        Assert.StartsWith("550 5.1.1", await smtp.CommandAsync("RCPT TO:<\u212Aate@localhost>")); // not "kate": only ASCII folds
        Assert.StartsWith("501 5.1.3", await smtp.CommandAsync("RCPT TO:<x@a\u00ADb\u200D.\u0378.test>"));
        Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
        Assert.StartsWith("250", await smtp.CommandAsync("Subject: k\r\n\r\nbody\r\n."));
        Assert.Equal(["x@kelvin.test", "KATE@localhost"], Assert.Single(await mta.QueuedAsync()).Recipients);
    }
}

using System.Net;
using System.Net.Sockets;
using System.Text;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Protocol;

/// <summary>
/// The milter client against a real milter (pymilter over Sendmail's libmilter, <see cref="ScriptedMilter"/>), session
/// by session over in-memory pipes: each event at its SMTP moment with its macros, every reply and modification, the
/// negotiated steps, a chain of milters, and milters that are down, silent or broken.
/// </summary>
public sealed class MilterSessionTests
{
    private static Task<InMemoryIngress> IngressAsync(string milters, Dictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?> { ["Ingress:Milters"] = milters };
        foreach (var (k, v) in more ?? []) settings[k] = v;
        return InMemoryIngress.StartAsync(settings);
    }

    /// <summary>A scripted milter, an ingress in front of it, and a client connected (with its greeting); all go on dispose.</summary>
    private sealed record Session(ScriptedMilter Milter, InMemoryIngress Mta, RawSmtpClient Smtp, string Greeting) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Smtp.DisposeAsync();
            await Mta.DisposeAsync();
            await Milter.DisposeAsync();
        }
    }

    /// <summary>Starts a <see cref="Session"/>; <paramref name="milters"/> makes the milter list from the milter's address.</summary>
    private static async Task<Session> SessionAsync(Func<string, string>? milters = null, bool noReply = false)
    {
        var milter = await ScriptedMilter.StartAsync(noReply: noReply);
        var mta = await IngressAsync(milters?.Invoke(milter.Address) ?? milter.Address);
        var (smtp, greeting) = await mta.ConnectAsync();
        return new Session(milter, mta, smtp, greeting);
    }

    /// <summary>EHLO, MAIL, each RCPT and DATA; the reply to DATA.</summary>
    private static async Task<string> StartAsync(RawSmtpClient smtp, string from, params string[] to)
    {
        await smtp.CommandAsync("EHLO client.test");
        Assert.StartsWith("250 ", await smtp.CommandAsync($"MAIL FROM:<{from}>"));
        foreach (var rcpt in to) Assert.StartsWith("250 ", await smtp.CommandAsync($"RCPT TO:<{rcpt}>"));
        return await smtp.CommandAsync("DATA");
    }

    private static async Task<string> SendAsync(RawSmtpClient smtp, string message)
    {
        await smtp.WriteAsync(message + ".\r\n");
        return await smtp.ReplyAsync();
    }

    [Fact]
    public async Task Every_event_reaches_the_milter_at_its_smtp_moment_with_postfix_macros()
    {
        await using var session = await SessionAsync();
        var (milter, mta, smtp, greeting) = session;
        Assert.StartsWith("220 mta.test ESMTP", greeting);
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@localhost", "two@far.test"));
        var queued = await SendAsync(smtp, "Subject: events\r\nX-Folded: first\r\n second\r\n\r\nbody\r\n");
        Assert.StartsWith("250 2.0.0 Ok: queued as ", queued);
        Assert.StartsWith("221", await smtp.CommandAsync("QUIT"));

        var events = await milter.EventsAfterAsync("close");
        Assert.Equal(["connect", "helo", "mail", "rcpt", "rcpt", "data", "header", "header", "eoh", "body", "eom", "close"], events.Select(e => e.Name));
        Assert.Equal("mta.test", events[0].Macros["j"]);
        Assert.Equal("unknown [127.0.0.1]", events[0].Macros["_"]);
        Assert.Equal("127.0.0.1", events[0].Args[1]);
        Assert.Equal("client.test", events[1].Args[0]);
        Assert.Equal("<a@sender.test>", events[2].Args[0]);
        Assert.Equal("a@sender.test", events[2].Macros["{mail_addr}"]);
        Assert.Equal("two@far.test", events[4].Macros["{rcpt_addr}"]);
        Assert.Equal(["X-Folded", "first\n second"], events[7].Args); // Sendmail's manner: a space eaten, lines joined by LF
        Assert.Equal(queued.Trim()[^16..], events.Single(e => e.Name == "eom").Macros["i"]);
        Assert.Contains(mta.Log.Lines, l => l.Contains("status=queued") && l.Contains("milters=(inet:127.0.0.1:"));
    }

    [Fact]
    public async Task End_of_message_modifications_change_what_is_queued()
    {
        await using var session = await SessionAsync();
        var (milter, mta, smtp, _) = session;
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "keep@rcpt.test", "gone@rcpt.test"));
        var queued = await SendAsync(smtp, "X-Remove-Me: yes\r\nSubject: change-from add-rcpt del-rcpt rewrite-body\r\nX-Change-Me: before\r\n\r\nold body\r\n");
        Assert.StartsWith("250 2.0.0 Ok: queued as ", queued);

        var envelope = Assert.Single(await mta.QueuedAsync());
        Assert.Equal(queued.Trim()[^16..], envelope.Id);
        Assert.Equal("changed@sender.test", envelope.Sender);
        Assert.Equal(["keep@rcpt.test", "added@rcpt.test"], envelope.Recipients);
        var text = Encoding.UTF8.GetString(envelope.Content!);
        Assert.Equal("X-First-a: top\r\nSubject: change-from add-rcpt del-rcpt rewrite-body\r\nX-Change-Me: changed\r\nX-Milter-a: seen\r\n\r\nthe milter's body\r\n", text);
        Assert.Equal(text.Length, envelope.Size);
    }

    [Fact]
    public async Task Refusals_answer_the_command_they_are_about_and_a_recipients_refusal_refuses_only_it()
    {
        await using var session = await SessionAsync();
        var (milter, mta, smtp, _) = session;
        await smtp.CommandAsync("EHLO client.test");
        Assert.Equal("550 5.7.1 Command rejected\r\n", await smtp.CommandAsync("MAIL FROM:<reject-mail@sender.test>"));
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.Equal("550 5.7.1 no such user here\r\n", await smtp.CommandAsync("RCPT TO:<reject-rcpt@rcpt.test>"));
        Assert.Equal("451 4.7.1 Service unavailable - try again later\r\n", await smtp.CommandAsync("RCPT TO:<tempfail-rcpt@rcpt.test>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<fine@rcpt.test>"));
        Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
        Assert.Equal("554-5.7.1 first line\r\n554 5.7.1 second line\r\n", await SendAsync(smtp, "Subject: reject\r\n\r\nx\r\n"));
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "fine@rcpt.test"));
        Assert.Equal("451 4.7.1 Service unavailable - try again later\r\n", await SendAsync(smtp, "Subject: tempfail\r\n\r\nx\r\n"));
        Assert.Empty(await mta.QueuedAsync());
        Assert.Contains(mta.Log.Lines, l => l.Contains("milter-reject: RCPT from [127.0.0.1]: 550 5.7.1 no such user here"));
        Assert.Equal("502 5.5.1 unknown to the milter too\r\n", await smtp.CommandAsync("XYZZY plugh"));
    }

    [Fact]
    public async Task Discard_answers_250_and_drops_while_quarantine_queues_for_the_hold_queue()
    {
        await using var session = await SessionAsync();
        var (milter, mta, smtp, _) = session;
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        Assert.StartsWith("250 2.0.0 Ok: queued as", await SendAsync(smtp, "Subject: discard\r\n\r\nx\r\n"));
        Assert.Empty(await mta.QueuedAsync());
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        Assert.StartsWith("250 2.0.0 Ok: queued as", await SendAsync(smtp, "Subject: quarantine\r\n\r\nx\r\n"));
        Assert.Equal("scripted quarantine", Assert.Single(await mta.QueuedAsync()).Hold);
        Assert.Contains(mta.Log.Lines, l => l.Contains("status=held"));
    }

    [Fact]
    public async Task Rset_aborts_the_transaction_at_the_milter_and_skip_ends_the_body()
    {
        await using var session = await SessionAsync();
        var (milter, mta, smtp, _) = session;
        await smtp.CommandAsync("EHLO client.test");
        await smtp.CommandAsync("MAIL FROM:<a@sender.test>");
        Assert.StartsWith("250", await smtp.CommandAsync("RSET"));
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        var body = string.Concat(Enumerable.Repeat(new string('x', 998) + "\r\n", 300)); // 300 KB: five chunks, but the milter skips after one
        Assert.StartsWith("250 2.0.0", await SendAsync(smtp, "Subject: skip\r\n\r\n" + body));
        var events = await milter.EventsAfterAsync("eom");
        Assert.Equal("abort", events.First(e => e.Name is "abort" or "rcpt").Name);
        Assert.Single(events, e => e.Name == "body");
        Assert.EndsWith(body, Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!)); // the whole body is kept
    }

    [Fact]
    public async Task No_reply_and_no_body_steps_are_honoured()
    {
        await using var session = await SessionAsync(noReply: true);
        var (milter, mta, smtp, _) = session;
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        Assert.StartsWith("250 2.0.0", await SendAsync(smtp, "Subject: one\r\nX-Two: 2\r\n\r\nbody\r\n"));
        var events = await milter.EventsAfterAsync("eom");
        Assert.Equal(2, events.Count(e => e.Name == "header"));
        Assert.DoesNotContain(events, e => e.Name == "body");
        Assert.Contains("X-Milter-a: seen", Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!));
    }

    [Fact]
    public async Task A_chain_of_three_is_called_in_order_each_seeing_the_changes_before_it()
    {
        await using var a = await ScriptedMilter.StartAsync("a");
        await using var b = await ScriptedMilter.StartAsync("b");
        await using var c = await ScriptedMilter.StartAsync("c");
        await using var mta = await IngressAsync($"{a.Address}, {b.Address} {{ {c.Address}, command_timeout = 5s }}");
        var (smtp, _) = await mta.ConnectAsync();
        await using var __ = smtp;
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        Assert.StartsWith("250 2.0.0", await SendAsync(smtp, "Subject: chain\r\n\r\nbody\r\n"));
        var text = Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!);
        // a's change of a field there is not adds it (as Postfix and Sendmail do); b and c change the one a added.
        Assert.Equal("X-First-c: top\r\nX-First-b: top\r\nX-First-a: top\r\nSubject: chain\r\nX-Milter-a: seen\r\nX-Change-Me: changed\r\n"
            + "X-Milter-b: seen\r\nX-Milter-c: seen\r\n\r\nbody\r\n", text);
        var seenByC = (await c.EventsAfterAsync("eom")).Where(e => e.Name == "header").Select(e => e.Args[0]);
        Assert.Equal(["X-First-b", "X-First-a", "Subject", "X-Milter-a", "X-Change-Me", "X-Milter-b"], seenByC);
        // A refusal by the first stops the chain: the others never hear of that MAIL.
        Assert.StartsWith("550", await smtp.CommandAsync("MAIL FROM:<reject-mail@sender.test>"));
        Assert.DoesNotContain(await b.EventsAfterAsync("mail"), e => e.Name == "mail" && e.Args[0].Contains("reject-mail"));
    }

    // As Postfix: a 5xx at connect (default_action = reject) is a 554 greeting, and the refusal stands for every MAIL.
    [Theory]
    [InlineData("", "220 mta.test ESMTP", "451 4.7.1 Service unavailable - try again later")]
    [InlineData("default_action = reject", "554 mta.test ESMTP not accepting connections", "550 5.5.0 Service unavailable")]
    [InlineData("default_action = accept", "220 mta.test ESMTP", "250 2.1.0 Ok")]
    public async Task A_milter_that_is_down_gets_its_default_action(string setting, string greets, string mailReply)
    {
        var closed = TestEnvironment.FreeTcpPort();
        await using var mta = await IngressAsync($"{{ inet:127.0.0.1:{closed}, connect_timeout = 2s{(setting.Length > 0 ? ", " + setting : "")} }}");
        var (smtp, greeting) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.Equal(greets + "\r\n", greeting);
        Assert.StartsWith("250", await smtp.CommandAsync("EHLO client.test"));
        Assert.Equal(mailReply + "\r\n", await smtp.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.Contains(mta.Log.Lines, l => l.Contains($"warning: milter inet:127.0.0.1:{closed}: connect: connect failed"));
    }

    [Fact]
    public async Task Quarantine_as_default_action_holds_every_message_of_a_session_whose_milter_is_down()
    {
        var closed = TestEnvironment.FreeTcpPort();
        await using var mta = await IngressAsync($"inet:127.0.0.1:{closed}", new() { ["Ingress:MilterDefaultAction"] = "quarantine" });
        var (smtp, _) = await mta.ConnectAsync();
        await using var __ = smtp;
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        Assert.StartsWith("250 2.0.0", await SendAsync(smtp, "Subject: x\r\n\r\nx\r\n"));
        Assert.Equal("default_action", Assert.Single(await mta.QueuedAsync()).Hold);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_milter_that_never_answers_or_answers_garbage_times_out_to_its_default_and_the_session_goes_on(bool garbage)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var peer = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            var buffer = new byte[4096];
            await socket.ReceiveAsync(buffer);
            if (garbage) await socket.SendAsync(new byte[] { 0, 0, 0, 3, (byte)'Z', 1, 2 }); // a reply code no milter has
            await Task.Delay(TimeSpan.FromSeconds(10));
        });
        await using var mta = await IngressAsync($"{{ inet:127.0.0.1:{port}, command_timeout = 1s }}");
        var started = DateTime.UtcNow;
        var (smtp, greeting) = await mta.ConnectAsync();
        await using var _ = smtp;
        Assert.StartsWith("220 ", greeting);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5), "the greeting waited past the milter's timeout");
        Assert.StartsWith("250", await smtp.CommandAsync("EHLO client.test"));
        Assert.StartsWith("451 4.7.1", await smtp.CommandAsync("MAIL FROM:<a@sender.test>"));
        Assert.StartsWith("250", await smtp.CommandAsync("NOOP"));
        Assert.Contains(mta.Log.Lines, l => l.Contains("warning: milter") && l.Contains(garbage ? "unknown reply code 'Z'" : "timeout"));
    }

    [Fact]
    public async Task Accept_at_mail_ends_the_milters_part_in_that_message_and_progress_keeps_a_slow_one_within_its_timeout()
    {
        await using var session = await SessionAsync(milters: address => $"{{ {address}, content_timeout = 2s }}");
        var (milter, mta, smtp, _) = session;
        Assert.StartsWith("354", await StartAsync(smtp, "accept-mail@sender.test", "one@rcpt.test"));
        Assert.StartsWith("250 2.0.0", await SendAsync(smtp, "Subject: accepted early\r\n\r\nx\r\n"));
        Assert.Equal("Subject: accepted early\r\n\r\nx\r\n", Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!));
        Assert.DoesNotContain(milter.Events(), e => e.Name is "rcpt" or "header" or "eom");

        // 2.4 s at the end of the message, over the 2 s timeout, but with SMFIR_PROGRESS every 0.6 s (1.4 s to spare under load).
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        Assert.StartsWith("250 2.0.0", await SendAsync(smtp, "Subject: progress\r\n\r\nx\r\n"));
        Assert.Contains("X-Milter-a: seen", Encoding.ASCII.GetString((await mta.QueuedAsync())[1].Content!));
    }

    [Fact]
    public async Task Bdat_gets_the_data_event_at_its_first_chunk_and_the_changes_at_its_last_and_a_bad_address_from_a_milter_is_left_out()
    {
        await using var session = await SessionAsync();
        var (milter, mta, smtp, _) = session;
        await smtp.CommandAsync("EHLO client.test");
        await smtp.CommandAsync("MAIL FROM:<a@sender.test>");
        await smtp.CommandAsync("RCPT TO:<one@rcpt.test>");
        const string first = "Subject: bad-rcpt add-rcpt\r\n", second = "\r\nchunked body\r\n";
        await smtp.WriteAsync($"BDAT {first.Length}\r\n{first}");
        Assert.StartsWith("250", await smtp.ReplyAsync());
        Assert.Equal("data", milter.Events().Last().Name);
        await smtp.WriteAsync($"BDAT {second.Length} LAST\r\n{second}");
        Assert.StartsWith("250 2.0.0 Ok: queued as", await smtp.ReplyAsync());
        var envelope = Assert.Single(await mta.QueuedAsync());
        Assert.Equal(["one@rcpt.test", "added@rcpt.test"], envelope.Recipients);
        Assert.StartsWith("X-First-a: top\r\nSubject: bad-rcpt add-rcpt\r\n", Encoding.ASCII.GetString(envelope.Content!));
        Assert.Contains(mta.Log.Lines, l => l.Contains("warning: milter recipient <not?an?address> ignored") /* made printable as a HELO name is */);
    }

    [Fact]
    public async Task A_slow_end_of_message_gets_the_default_action_after_the_content_timeout()
    {
        await using var session = await SessionAsync(milters: address => $"{{ {address}, content_timeout = 1s }}");
        var (milter, mta, smtp, _) = session;
        Assert.StartsWith("354", await StartAsync(smtp, "a@sender.test", "one@rcpt.test"));
        Assert.Equal("451 4.7.1 Service unavailable - try again later\r\n", await SendAsync(smtp, "Subject: slow\r\n\r\nx\r\n"));
        Assert.StartsWith("250", await smtp.CommandAsync("NOOP"));
        Assert.Empty(await mta.QueuedAsync());
    }
}

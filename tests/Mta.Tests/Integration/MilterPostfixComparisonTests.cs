using System.Text.RegularExpressions;
using Mta.Tests.Peers;
using Mta.Tests.Protocol;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Side by side with Postfix: the same mail through Postfix's smtpd (with <c>smtpd_milters</c>) and through the
/// ingress, each in front of its own copy of the scripted milter: the same replies for every decision, and the same
/// header, body, sender and recipient changes in what Postfix delivers and what the ingress queues; and with the same
/// rspamd and OpenDKIM in front of both, the same refusal of GTUBE and the same filter headers on clean mail.
/// </summary>
[RunsLong(25)] // rspamd takes about ten seconds to start
public sealed class MilterPostfixComparisonTests
{
    private sealed record Mail(string From, string[] To, string Message);

    private static readonly Mail[] Decisions =
    [
        new("reject-mail@sender.test", ["u@rcpt.test"], "Subject: none\r\n\r\nx\r\n"),
        new("a@sender.test", ["reject-rcpt@rcpt.test", "tempfail-rcpt@rcpt.test", "u@rcpt.test"], "Subject: reject\r\n\r\nx\r\n"),
        new("a@sender.test", ["u@rcpt.test"], "Subject: tempfail\r\n\r\nx\r\n"),
        new("a@sender.test", ["u@rcpt.test"], "Subject: discard\r\n\r\nx\r\n"),
        new("a@sender.test", ["u@rcpt.test"], "Subject: quarantine\r\n\r\nx\r\n"),
    ];

    /// <summary>A session with each, greeted with the same EHLO.</summary>
    private static async Task<(RawSmtpClient Theirs, RawSmtpClient Mine)> GreetBothAsync(PostfixServer postfix, InMemoryIngress ours)
    {
        var (theirs, _) = await RawSmtpClient.ConnectAsync(postfix.Port);
        var (mine, _) = await ours.ConnectAsync();
        await theirs.CommandAsync("EHLO client.test");
        await mine.CommandAsync("EHLO client.test");
        return (theirs, mine);
    }

    /// <summary>Every reply of one transaction, queue ids made alike.</summary>
    private static async Task<List<string>> TransactAsync(RawSmtpClient smtp, Mail mail)
    {
        var replies = new List<string> { await smtp.CommandAsync($"MAIL FROM:<{mail.From}>") };
        if (!replies[0].StartsWith('2')) return replies;
        foreach (var to in mail.To) replies.Add(await smtp.CommandAsync($"RCPT TO:<{to}>"));
        replies.Add(await smtp.CommandAsync("DATA"));
        if (replies[^1].StartsWith("354"))
        {
            await smtp.WriteAsync(mail.Message + ".\r\n");
            replies.Add(await smtp.ReplyAsync());
        }
        else await smtp.CommandAsync("RSET");
        return [.. replies.Select(r => Regex.Replace(r, @"queued as \S+", "queued as ID"))];
    }

    [SkippableFact]
    public async Task Postfix_and_the_ingress_make_the_same_decisions_and_changes_with_the_same_milter()
    {
        await using var forPostfix = await ScriptedMilter.StartAsync();
        await using var forUs = await ScriptedMilter.StartAsync();
        await using var sink = await SmtpSink.StartAsync();
        await using var postfix = await PostfixServer.StartAsync(relayHost: $"[127.0.0.1]:{sink.Port}", milters: forPostfix.Address);
        await using var ours = await InMemoryIngress.StartAsync(new Dictionary<string, string?> { ["Ingress:Milters"] = forUs.Address });
        var (theirs, mine) = await GreetBothAsync(postfix, ours);
        await using var _1 = theirs;
        await using var _2 = mine;

        foreach (var mail in Decisions)
            Assert.Equal(await TransactAsync(theirs, mail), await TransactAsync(mine, mail));
        Assert.Equal("scripted quarantine", Assert.Single(await ours.QueuedAsync()).Hold); // Postfix: its hold queue, below

        var changed = new Mail("a@sender.test", ["keep@rcpt.test", "gone@rcpt.test"],
            "X-Remove-Me: yes\r\nSubject: change-from add-rcpt del-rcpt rewrite-body\r\nX-Change-Me: before\r\n\r\nold body\r\n");
        Assert.Equal(await TransactAsync(theirs, changed), await TransactAsync(mine, changed));

        // Until the dump is whole: smtp-sink creates it at MAIL and fills it as the message arrives.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps() is [var dump] && dump.Contains("the milter's body")),
            TimeSpan.FromSeconds(20)), postfix.Output);
        var delivered = Assert.Single(sink.Dumps()).Replace("\n", "\r\n"); // quarantined and discarded mail never left Postfix
        Assert.Contains("milter-hold: END-OF-MESSAGE", postfix.Output);
        var queued = (await ours.QueuedAsync())[1];
        Assert.Contains("X-Mail-Args: changed@sender.test", delivered.Replace("<", "").Replace(">", ""));
        Assert.Equal("changed@sender.test", queued.Sender);
        Assert.Equal(["added@rcpt.test", "keep@rcpt.test"], Regex.Matches(delivered, @"X-Rcpt-Args: <?([^\s>]+)").Select(m => m.Groups[1].Value).Order());
        Assert.Equal(["added@rcpt.test", "keep@rcpt.test"], queued.Recipients.Order());
        var ourText = System.Text.Encoding.ASCII.GetString(queued.Content!);
        Assert.Equal(MilterFields(delivered), MilterFields(ourText));
        Assert.EndsWith("\r\n\r\nthe milter's body", delivered.TrimEnd('\r', '\n')); // smtp-sink's dump ends with an empty line of its own
        Assert.EndsWith("\r\n\r\nthe milter's body\r\n", ourText);
    }

    [SkippableFact]
    public async Task With_the_same_rspamd_and_opendkim_both_refuse_gtube_alike_and_queue_the_same_filter_headers()
    {
        var rspamd = await Rspamd.SharedAsync();
        await using var dkim = await OpenDkim.SignerAsync("sender.test", "sel");
        var milters = $"{rspamd.Address}, {dkim.Address}";
        await using var sink = await SmtpSink.StartAsync();
        await using var postfix = await PostfixServer.StartAsync(relayHost: $"[127.0.0.1]:{sink.Port}", milters: milters);
        await using var ours = await InMemoryIngress.StartAsync(new Dictionary<string, string?> { ["Ingress:Milters"] = milters });
        var (theirs, mine) = await GreetBothAsync(postfix, ours);
        await using var _1 = theirs;
        await using var _2 = mine;
        const string clean = "From: A <a@sender.test>\r\nTo: u@rcpt.test\r\nSubject: hello\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
            + "Message-ID: <cmp@sender.test>\r\n\r\nA body line.\r\n";
        var gtube = new Mail("a@sender.test", ["u@rcpt.test"], clean.Replace("A body line.", "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"));
        var refused = await TransactAsync(theirs, gtube);
        Assert.StartsWith("554 5.7.1", refused[^1]);
        Assert.Equal(refused, await TransactAsync(mine, gtube));

        var fine = new Mail("a@sender.test", ["u@rcpt.test"], clean);
        Assert.Equal(await TransactAsync(theirs, fine), await TransactAsync(mine, fine));
        // Until the dump is whole: smtp-sink creates it at MAIL and fills it as the message arrives.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps() is [var dump] && dump.Contains("A body line.")),
            TimeSpan.FromSeconds(20)), postfix.Output);
        var delivered = Assert.Single(sink.Dumps()).Replace("\n", "\r\n");
        var queued = System.Text.Encoding.ASCII.GetString(Assert.Single(await ours.QueuedAsync()).Content!);
        // The same fields from the filters on both sides: rspamd's verdict and OpenDKIM's signature (values differ by host and time).
        Assert.Equal(FilterFieldNames(delivered), FilterFieldNames(queued));
        Assert.Contains("X-Spam-Status: No", delivered);
        Assert.Contains("X-Spam-Status: No", queued);
    }

    /// <summary>Names of the fields the filters add, in order.</summary>
    private static List<string> FilterFieldNames(string message)
        => [.. message[..message.IndexOf("\r\n\r\n", StringComparison.Ordinal)].Split("\r\n")
            .Where(l => l.Length > 0 && l[0] is not (' ' or '\t')).Select(l => l[..l.IndexOf(':')])
            .Where(n => n is "DKIM-Signature" or "X-Spamd-Result" or "X-Spam-Status")];

    /// <summary>The header fields a milter touched or left (Subject and X- fields), in order, as name: value.</summary>
    private static List<string> MilterFields(string message)
    {
        var header = message[..message.IndexOf("\r\n\r\n", StringComparison.Ordinal)];
        return [.. header.Split("\r\n").Where(l => l.StartsWith("X-First") || l.StartsWith("Subject:") || l.StartsWith("X-Milter") || l.StartsWith("X-Change") || l.StartsWith("X-Remove"))];
    }
}

using System.Text.RegularExpressions;
using Mta.Tests.Peers;
using Mta.Tests.Protocol;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Side by side with Postfix: the same mail through Postfix's smtpd (with <c>smtpd_milters</c>) and through the
/// ingress, each in front of its own copy of the scripted milter: the same replies for every decision, and the same
/// header, body, sender and recipient changes in what Postfix delivers and what the ingress queues.
/// </summary>
[RunsLong(20)]
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
        var (theirs, _) = await RawSmtpClient.ConnectAsync(postfix.Port);
        var (mine, _) = await ours.ConnectAsync();
        await using var _1 = theirs;
        await using var _2 = mine;
        await theirs.CommandAsync("EHLO client.test");
        await mine.CommandAsync("EHLO client.test");

        foreach (var mail in Decisions)
            Assert.Equal(await TransactAsync(theirs, mail), await TransactAsync(mine, mail));
        Assert.Equal("scripted quarantine", Assert.Single(await ours.QueuedAsync()).Hold); // Postfix: its hold queue, below

        var changed = new Mail("a@sender.test", ["keep@rcpt.test", "gone@rcpt.test"],
            "X-Remove-Me: yes\r\nSubject: change-from add-rcpt del-rcpt rewrite-body\r\nX-Change-Me: before\r\n\r\nold body\r\n");
        Assert.Equal(await TransactAsync(theirs, changed), await TransactAsync(mine, changed));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count >= 1), TimeSpan.FromSeconds(20)), postfix.Output);
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

    /// <summary>The header fields a milter touched or left (Subject and X- fields), in order, as name: value.</summary>
    private static List<string> MilterFields(string message)
    {
        var header = message[..message.IndexOf("\r\n\r\n", StringComparison.Ordinal)];
        return [.. header.Split("\r\n").Where(l => l.StartsWith("X-First") || l.StartsWith("Subject:") || l.StartsWith("X-Milter") || l.StartsWith("X-Change") || l.StartsWith("X-Remove"))];
    }
}

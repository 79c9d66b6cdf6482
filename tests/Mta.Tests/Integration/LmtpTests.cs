using MailKit.Net.Smtp;
using MimeKit;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>Local domains delivered over LMTP to a real Dovecot, with per-recipient replies after DATA.</summary>
public sealed class LmtpTests
{
    [SkippableFact]
    public async Task One_recipient_accepted_and_one_refused_in_the_same_transaction()
    {
        await using var dovecot = await DovecotLmtp.StartAsync("alice", "sender");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:LocalTransport"] = $"lmtp:[127.0.0.1]:{dovecot.Port}",
        });

        var subject = "lmtp " + Guid.NewGuid().ToString("N");
        var m = new MimeMessage();
        m.From.Add(MailboxAddress.Parse("sender@localhost"));
        m.To.Add(MailboxAddress.Parse("alice@localhost"));
        m.Cc.Add(MailboxAddress.Parse("ghost@localhost"));
        m.Subject = subject;
        m.Body = new TextPart("plain") { Text = "line one\r\n.line with a leading dot\r\n" };
        using (var client = new SmtpClient())
        {
            await client.ConnectAsync("127.0.0.1", mta.SmtpPort, MailKit.Security.SecureSocketOptions.None);
            await client.SendAsync(m);
            await client.DisconnectAsync(true);
        }

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(dovecot.Delivered("alice").Length == 1), TimeSpan.FromSeconds(60)),
            "not delivered to alice; dovecot log:\n" + ReadLog(dovecot));
        var delivered = await File.ReadAllTextAsync(dovecot.Delivered("alice")[0]);
        Assert.Contains(subject, delivered);
        Assert.Contains("\n.line with a leading dot", delivered.Replace("\r\n", "\n")); // dot-stuffing undone by the server, not doubled
        Assert.Contains("Return-Path: <sender@localhost>", delivered);

        // ghost was refused at RCPT (550 5.1.1): the sender, also a Dovecot user, gets the report over LMTP.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(dovecot.Delivered("sender").Length == 1), TimeSpan.FromSeconds(60)),
            "no bounce for ghost; dovecot log:\n" + ReadLog(dovecot));
        var report = await File.ReadAllTextAsync(dovecot.Delivered("sender")[0]);
        Assert.Contains("Final-Recipient: rfc822; ghost@localhost", report);
        Assert.Contains("Status: 5.1.1", report);
        Assert.Contains("Return-Path: <>", report);
        Assert.Empty(dovecot.Delivered("ghost"));
    }

    private static string ReadLog(DovecotLmtp d)
    {
        var log = Path.Combine(d.Root, "dovecot.log");
        return File.Exists(log) ? File.ReadAllText(log) : d.Output;
    }
}

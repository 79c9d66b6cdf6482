using Azure.Storage.Queues;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>RFC 3461 parameters from MAIL and RCPT honoured end to end: NOTIFY, ORCPT, RET, ENVID.</summary>
public sealed class DsnTests
{
    private static async Task SendAsync(int port, string mail, params string[] rcpts)
    {
        var (smtp, _) = await RawSmtpClient.ConnectAsync(port);
        await using var _ = smtp;
        Assert.Contains("DSN", await smtp.CommandAsync("EHLO client.test"));
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:" + mail));
        foreach (var r in rcpts) Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:" + r));
        Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
        await smtp.WriteAsync("Subject: dsn test\r\nFrom: sender@localhost\r\n\r\nsecret body text\r\n.\r\n");
        Assert.StartsWith("250", await smtp.ReplyAsync());
        await smtp.CommandAsync("QUIT");
    }

    [SkippableFact]
    public async Task Success_and_failure_are_reported_as_asked_with_orcpt_envid_and_headers_only()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var (sink, settings) = await BounceTests.RefusingNextHopAsync();
        await using var _ = sink;
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, settings);
        await SendAsync(mta.SmtpPort, "<sender@localhost> RET=HDRS ENVID=batch+2B42",
            "<ok@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Original+40example.org",
            "<nobody@gone.test> NOTIFY=FAILURE");

        // Two next hops, two jobs: the success (local) and the failure (gone.test) come in a report each.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("sender").Length == 2), TimeSpan.FromSeconds(60)),
            string.Join("\n", mta.Log.Lines));
        var report = string.Concat(mta.Maildir("sender").Select(f => File.ReadAllText(f).Replace("\r\n", "\n")));
        Assert.Contains("Original-Envelope-Id: batch+42", report);
        Assert.Matches(@"Final-Recipient: rfc822; ok@localhost\nOriginal-Recipient: rfc822;Original@example.org\nAction: delivered\nStatus: 2\.0\.0", report);
        Assert.Matches(@"Final-Recipient: rfc822; nobody@gone.test\nAction: failed\nStatus: 5\.3\.0", report);
        Assert.Contains("text/rfc822-headers", report); // RET=HDRS
        Assert.Contains("Subject: dsn test", report);
        Assert.DoesNotContain("secret body text", report);
        Assert.Single(mta.Maildir("ok"));
    }

    [SkippableFact]
    public async Task Notify_never_means_no_report()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var (sink, settings) = await BounceTests.RefusingNextHopAsync();
        await using var _ = sink;
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, settings);
        await SendAsync(mta.SmtpPort, "<sender@localhost>", "<nobody@gone.test> NOTIFY=NEVER", "<ok@localhost>");
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("ok").Length == 1), TimeSpan.FromSeconds(60)));
        var bounce = new QueueClient(azurite.ConnectionString, QueueNames.Bounce);
        await Task.Delay(3000);
        Assert.Equal(0, (await bounce.GetPropertiesAsync()).Value.ApproximateMessagesCount);
        Assert.Empty(mta.Maildir("sender"));
    }

    [Fact]
    public async Task Malformed_dsn_parameters_are_refused()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, functions: false);
        var (smtp, _) = await RawSmtpClient.ConnectAsync(mta.SmtpPort);
        await using var _ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("MAIL FROM:<a@sender.test> RET=BODY"));
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("MAIL FROM:<a@sender.test> ENVID=bad+ZZ"));
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("MAIL FROM:<a@sender.test> ENVID=a+0DX-Forged:+201")); // a CR, decoded
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("MAIL FROM:<a@sender.test> ENVID=a+1B[2J")); // a terminal escape
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<a@sender.test> RET=full"));
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("RCPT TO:<u@localhost> NOTIFY=NEVER,SUCCESS"));
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("RCPT TO:<u@localhost> ORCPT=nosemicolon"));
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("RCPT TO:<u@localhost> ORCPT=rfc822;a+0Db@x"));
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("RCPT TO:<u@localhost> ORCPT=rfc\r822;u@x")); // a bare CR in the type
        Assert.StartsWith("501 5.5.4", await smtp.CommandAsync("RCPT TO:<u@localhost> ORCPT=rfc822;u+1B@x"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<u@localhost> NOTIFY=delay,failure ORCPT=rfc822;u+40localhost"));
    }
}

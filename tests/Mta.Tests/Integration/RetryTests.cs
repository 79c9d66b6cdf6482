using MailKit.Net.Smtp;
using MimeKit;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Deferred mail, with the retry schedule scaled down by configuration (seconds instead of minutes):
/// it is tried again when due and delivered once the server takes it, or bounced when its lifetime ends.
/// </summary>
[RunsLong(30)]
public sealed class RetryTests
{
    private static Task SendAsync(int port, string subject)
        => TestMail.SendAsync(port, TestMail.Message("sender@localhost", "later@example.test", subject));

    private static async Task<(AzuriteAccount, MtaSystem)> StartAsync(int sinkPort, Dictionary<string, string?> settings)
    {
        var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sinkPort}\n");
        settings["Mta:TransportMapFile"] = map;
        settings["Mta:BackoffJitter"] = "0";
        return (azurite, await MtaSystem.StartAsync(azurite.ConnectionString, settings));
    }

    [SkippableFact]
    public async Task Deferred_mail_is_retried_when_due_and_delivered_once_the_server_takes_it()
    {
        var port = TestEnvironment.FreeTcpPort();
        var refusing = await SmtpSink.StartOnAsync(port, "-r", "RCPT");
        var (azurite, mta) = await StartAsync(port, new() { ["Mta:MinimalBackoffSeconds"] = "3", ["Mta:MaximalBackoffSeconds"] = "3" });
        await using var _ = azurite;
        await using var __ = mta;

        var subject = "retry " + Guid.NewGuid().ToString("N");
        await SendAsync(mta.SmtpPort, subject);
        // Let the first attempt be refused (450), then the server comes back taking mail.
        var queues = new Azure.Storage.Queues.QueueServiceClient(azurite.ConnectionString);
        Assert.True(await TestEnvironment.EventuallyAsync(async () =>
        {
            var q = queues.GetQueueClient(Mta.Mail.Queues.QueueNames.Deferred);
            return (await q.ExistsAsync()).Value && (await q.GetPropertiesAsync()).Value.ApproximateMessagesCount > 0;
        }, TimeSpan.FromSeconds(30)), "first attempt was not deferred");
        await refusing.DisposeAsync();
        await using var accepting = await SmtpSink.StartOnAsync(port);

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(accepting.Dumps().Any(d => d.Contains(subject))),
            TimeSpan.FromSeconds(60)), "the retry did not deliver");
        Assert.Single(accepting.Dumps(), d => d.Contains(subject));
        Assert.Empty(mta.Maildir("sender")); // no bounce for a temporary failure
    }

    [SkippableFact]
    public async Task Mail_deferred_past_its_lifetime_bounces_to_the_sender()
    {
        await using var refusing = await SmtpSink.StartAsync("-r", "RCPT");
        var (azurite, mta) = await StartAsync(refusing.Port, new()
        {
            ["Mta:MinimalBackoffSeconds"] = "1", ["Mta:MaximalBackoffSeconds"] = "2", ["Mta:MaximalQueueLifetimeSeconds"] = "6",
        });
        await using var _ = azurite;
        await using var __ = mta;

        await SendAsync(mta.SmtpPort, "never");
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("sender").Length == 1), TimeSpan.FromSeconds(90)),
            "no bounce after the queue lifetime");
        var report = await File.ReadAllTextAsync(mta.Maildir("sender")[0]);
        Assert.Contains("Final-Recipient: rfc822; later@example.test", report);
        Assert.Contains("Status: 5.", report);
        Assert.Contains("Action: failed", report);
        Assert.DoesNotContain(refusing.Dumps(), d => d.Contains("Subject: never"));
    }

    [SkippableFact]
    public async Task A_delay_warning_goes_to_the_sender_once_and_the_mail_is_still_retried()
    {
        await using var refusing = await SmtpSink.StartAsync("-r", "RCPT");
        var (azurite, mta) = await StartAsync(refusing.Port, new()
        {
            ["Mta:MinimalBackoffSeconds"] = "1", ["Mta:MaximalBackoffSeconds"] = "1", ["Mta:DelayWarningSeconds"] = "2",
        });
        await using var _ = azurite;
        await using var __ = mta;

        await SendAsync(mta.SmtpPort, "slow");
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("sender").Length == 1), TimeSpan.FromSeconds(60)),
            "no delay warning");
        // Several more attempts, and still one warning.
        Assert.True(await TestEnvironment.EventuallyAsync(
            () => Task.FromResult(mta.Log.Matching("to=<later@example.test>", "status=deferred").Count >= 6), TimeSpan.FromSeconds(60)));
        var notice = await File.ReadAllTextAsync(Assert.Single(mta.Maildir("sender")));
        Assert.Contains("Subject: Delayed Mail (still being retried)", notice);
        Assert.Contains("Action: delayed", notice);
        Assert.Contains("Status: 4.", notice);
        Assert.Contains("Will-Retry-Until: ", notice);
        Assert.Contains("This is a warning only.", notice);
    }
}

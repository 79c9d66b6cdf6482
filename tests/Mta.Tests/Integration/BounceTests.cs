using MailKit.Net.Smtp;
using MimeKit;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>A message accepted with 250 that cannot be delivered comes back to its sender as an RFC 3464 report.</summary>
[RunsLong(36)]
public sealed class BounceTests
{
    private static Task SendAsync(int port, string from, string to, string subject)
        => TestMail.SendAsync(port, TestMail.Message("author@localhost", to, subject, "body of " + subject), from);

    /// <summary>
    /// A next hop for <c>gone.test</c> that refuses every recipient for good (smtp-sink <c>-f RCPT</c>: 500 5.3.0), and
    /// the settings that route the domain there: a recipient the ingress accepts and delivery then bounces.
    /// </summary>
    internal static async Task<(SmtpSink Sink, Dictionary<string, string?> Settings)> RefusingNextHopAsync()
    {
        var sink = await SmtpSink.StartAsync("-f", "RCPT");
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"gone.test smtp:[127.0.0.1]:{sink.Port}\n");
        return (sink, new Dictionary<string, string?> { ["Mta:TransportMapFile"] = map });
    }

    [SkippableFact]
    public async Task Nxdomain_recipient_is_bounced_to_the_sender_from_the_null_sender()
    {
        await using var dns = await Dnsmasq.StartAsync(); // authoritative for .test, knows no such domain
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?> { ["Mta:DnsServers:0"] = dns.Server });

        var subject = "bounce " + Guid.NewGuid().ToString("N");
        await SendAsync(mta.SmtpPort, "sender@localhost", "nobody@no-such-domain.test", subject);

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("sender").Length == 1), TimeSpan.FromSeconds(60)),
            "no bounce reached the sender");
        var text = await File.ReadAllTextAsync(mta.Maildir("sender")[0]);
        Assert.StartsWith("Return-Path: <>\r\n", text); // sent from the null sender
        var report = MimeMessage.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text[text.IndexOf("\r\n", text.IndexOf("Delivered-To:")) ..].TrimStart())));
        var multipart = Assert.IsType<MultipartReport>(report.Body);
        Assert.Equal("delivery-status", multipart.ReportType);
        var status = Assert.IsType<MessageDeliveryStatus>(multipart[1]);
        Assert.Equal("dns; mta.test", status.StatusGroups[0]["Reporting-MTA"]);
        var recipient = status.StatusGroups[1];
        Assert.Equal("rfc822; nobody@no-such-domain.test", recipient["Final-Recipient"]);
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.2", recipient["Status"]);
        Assert.Contains("Host not found", recipient["Diagnostic-Code"]);
        var returned = Assert.IsType<MessagePart>(multipart[2]);
        Assert.Equal(subject, returned.Message!.Subject);
        Assert.Equal("auto-replied", report.Headers["Auto-Submitted"]);
    }

    [SkippableFact]
    public async Task A_bounce_that_cannot_be_delivered_is_never_bounced()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var (sink, settings) = await RefusingNextHopAsync();
        await using var _ = sink;
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, settings);
        // The next hop refuses the recipient for good, and the sender is <>.
        await SendAsync(mta.SmtpPort, "", "nobody@gone.test", "double bounce");

        var queues = new Azure.Storage.Queues.QueueServiceClient(azurite.ConnectionString);
        async Task<int> Count(string q)
        {
            var c = queues.GetQueueClient(q);
            return (await c.ExistsAsync()).Value ? (await c.GetPropertiesAsync()).Value.ApproximateMessagesCount : 0;
        }
        // The bounce job is taken and dropped (logged): nothing is sent, nothing waits, nothing is poisoned.
        Assert.True(await TestEnvironment.EventuallyAsync(async () =>
            (await queues.GetQueueClient(QueueNames.Bounce).ExistsAsync()).Value && await Count(QueueNames.Bounce) == 0
            && await Count(QueueNames.Incoming) == 0 && await Count(QueueNames.Delivery) == 0, TimeSpan.FromSeconds(60)));
        await Task.Delay(2000);
        Assert.Equal(0, await Count(QueueNames.Delivery));
        // Nothing in the spool: the original travelled inline, and no notification was written.
        var spool = new Azure.Storage.Blobs.BlobContainerClient(azurite.ConnectionString, Mta.Mail.Spool.MessageSpool.ContainerName);
        var blobs = new List<string>();
        await foreach (var b in spool.GetBlobsAsync()) blobs.Add(b.Name);
        Assert.Empty(blobs);
        Assert.Equal(0, await Count(QueueNames.Bounce + "-poison"));
        Assert.Empty(Directory.Exists(Path.Combine(mta.DataDirectory, "maildir")) ? Directory.GetFiles(Path.Combine(mta.DataDirectory, "maildir"), "*", SearchOption.AllDirectories) : []);
    }

    [SkippableFact]
    public async Task With_2bounce_notices_the_postmaster_gets_one_copy_and_a_failing_copy_is_dropped()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var (sink, settings) = await RefusingNextHopAsync();
        await using var _ = sink;
        settings["Mta:NotifyDoubleBounce"] = "true";
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, settings);
        await SendAsync(mta.SmtpPort, "", "nobody@gone.test", "double bounce");
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("postmaster").Length == 1), TimeSpan.FromSeconds(60)),
            string.Join("\n", mta.Log.Lines));
        var copy = await File.ReadAllTextAsync(mta.Maildir("postmaster")[0]);
        Assert.Contains("Subject: Postmaster Copy: Undelivered Mail", copy);
        Assert.Contains("Final-Recipient: rfc822; nobody@gone.test", copy);
        Assert.StartsWith("Return-Path: <>\r\n", copy);

        // The postmaster address fails as well: the copy is dropped, not reported again.
        await using var azurite2 = await Azurite.LeaseAsync();
        // (x/y is no mailbox name: the copy, which never passes RCPT, fails at delivery.)
        await using var loop = await MtaSystem.StartAsync(azurite2.ConnectionString, new Dictionary<string, string?>(settings)
        {
            ["Mta:NotifyDoubleBounce"] = "true", ["Mta:DoubleBounceRecipient"] = "x/y@localhost",
        });
        await SendAsync(loop.SmtpPort, "", "nobody@gone.test", "double bounce loop");
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
            loop.Log.Matching("undeliverable bounce discarded: to=<x/y@localhost>").Count == 1), TimeSpan.FromSeconds(60)), string.Join("\n", loop.Log.Lines));
        await Task.Delay(2000);
        Assert.Single(loop.Log.Matching("undeliverable bounce sent to the postmaster"));
        Assert.Single(loop.Log.Matching("undeliverable bounce discarded"));
    }
}

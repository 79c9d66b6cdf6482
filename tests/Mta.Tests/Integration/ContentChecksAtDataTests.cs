using MailKit.Net.Smtp;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Header and body checks run once, by cleanup in the ingress at the end of DATA, as Postfix's smtpd runs cleanup before
/// its 250: a REJECT is refused to the client (no bounce to a sender that may be forged), a DISCARD is acknowledged and
/// dropped, a HOLD is held.
/// </summary>
public sealed class ContentChecksAtDataTests
{
    [SkippableFact]
    public async Task Reject_is_refused_at_data_and_discard_is_acknowledged_and_dropped()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var folder = TestEnvironment.TempFolder("checks");
        var header = Path.Combine(folder, "header_checks");
        await File.WriteAllTextAsync(header, "/^Subject: .*lottery/ REJECT no lottery mail here\n/^Subject: drop/ DISCARD\n/^Subject: odd/ HOLD\n");
        var body = Path.Combine(folder, "body_checks");
        await File.WriteAllTextAsync(body, "/^send bitcoin/ REJECT\n");
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString,
            new Dictionary<string, string?> { ["Mta:HeaderChecksFile"] = header, ["Mta:BodyChecksFile"] = body }, functions: false);

        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => TestMail.SendAsync(mta.SmtpPort,
            TestMail.Message("a@sender.test", "u@localhost", "You won the lottery")));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.Equal("5.7.1 no lottery mail here", refused.Message);

        var bodyRefused = await Assert.ThrowsAsync<SmtpCommandException>(() => TestMail.SendAsync(mta.SmtpPort,
            TestMail.Message("a@sender.test", "u@localhost", "hello", "Hi,\nsend bitcoin now\n")));
        Assert.Equal("5.7.1 message content rejected", bodyRefused.Message); // Postfix cleanup's text for a REJECT without one

        // A large message has sent its first block to storage before the end of DATA: the checks still see its start,
        // and the refused message leaves nothing behind.
        var large = await Assert.ThrowsAsync<SmtpCommandException>(() => TestMail.SendAsync(mta.SmtpPort,
            TestMail.Message("a@sender.test", "u@localhost", "lottery results", new string('x', 76) + string.Concat(Enumerable.Repeat("\n" + new string('y', 76), 40_000)))));
        Assert.Equal("5.7.1 no lottery mail here", large.Message);

        Assert.Contains("queued as", await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "u@localhost", "drop this")));
        Assert.Contains("queued as", await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "u@localhost", "odd one")));
        Assert.Single(mta.Log.Matching("from=<a@sender.test>, nrcpt=1, status=discarded"));
        // Each check ran once: one log line per match.
        Assert.Single(mta.Log.Matching("reject: header Subject: You won the lottery from [127.0.0.1]", "no lottery mail here", "header_checks:1"));
        Assert.Single(mta.Log.Matching("discard: header Subject: drop this"));

        // Only the HOLD message was queued, on hold; nothing of the refused or discarded ones.
        var spool = new Azure.Storage.Blobs.BlobContainerClient(azurite.ConnectionString, Mta.Mail.Spool.MessageSpool.ContainerName);
        Assert.Empty(await spool.GetBlobsAsync().ToListAsync());
        Assert.Empty(await QueuePeek.DeliveryAsync(azurite.ConnectionString));
        var held = Assert.Single(await QueuePeek.AllAsync<Mta.Mail.Contracts.DeliveryJob>(azurite.ConnectionString, QueueNames.Hold));
        Assert.Contains("Subject: odd one", System.Text.Encoding.UTF8.GetString(held.Content!));
    }
}

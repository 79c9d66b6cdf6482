using Azure.Storage.Queues;
using MailKit.Net.Smtp;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Cleanup run by the ingress before its 250 (<c>Ingress:CleanupInline</c>, the default), with only the ingress
/// running: a message's delivery job is queued directly, for a spooled one too, a loop is refused in the reply, and
/// a cleanup that fails part-way hands the message to the cleanup stage marked.
/// </summary>
public sealed class CleanupAtIngressTests
{
    private static Task<List<T>> Queued<T>(string storage, string queue) where T : class => QueuePeek.AllAsync<T>(storage, queue);

    [SkippableFact]
    public async Task A_message_is_cleaned_before_the_reply_and_its_job_queued_directly()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString,
            new Dictionary<string, string?> { ["Ingress:CleanupInline"] = "true" }, functions: false);

        var reply = await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "u@localhost", "small one"));
        var id = reply[(reply.LastIndexOf(' ') + 1)..];
        var job = Assert.Single(await Queued<DeliveryJob>(azurite.ConnectionString, QueueNames.Delivery));
        Assert.Equal((id + ".0", "u@localhost", false), (job.JobId, Assert.Single(job.Recipients), job.MaybeDuplicate));
        var text = System.Text.Encoding.UTF8.GetString(job.Content!);
        Assert.Matches($@"^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby \S+ \(Mta\) with ESMTP id {id}\r\n\tfor <u@localhost>;", text);
        Assert.Contains("Subject: small one", text);
        Assert.Empty(await Queued<IncomingEnvelope>(azurite.ConnectionString, QueueNames.Incoming));
        Assert.Single(mta.Log.Matching($"{id}: message-id=", "nrcpt=1, jobs=1"));

        // Over the inline limit the bytes are spooled first; the ingress still cleans the message up, reading the
        // header from what it holds, and the job carries the new header in front of the stored body.
        var large = await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "u@localhost", "large one",
            string.Concat(Enumerable.Repeat(new string('y', 76) + "\n", 700))));
        var largeId = large[(large.LastIndexOf(' ') + 1)..];
        var spooled = Assert.Single(await Queued<DeliveryJob>(azurite.ConnectionString, QueueNames.Delivery), j => j.MessageId == largeId);
        Assert.Equal((null, largeId, true), (spooled.Content, spooled.BlobName, spooled.SoleHolder));
        var header = System.Text.Encoding.UTF8.GetString(spooled.Header!);
        Assert.StartsWith("Received: from ", header);
        Assert.Contains("Subject: large one", header);
        var stored = (await new Azure.Storage.Blobs.BlobContainerClient(azurite.ConnectionString, Mta.Mail.Spool.MessageSpool.ContainerName)
            .GetBlobClient(largeId).DownloadContentAsync()).Value.Content.ToArray();
        Assert.True(stored.Length > Mta.Ingress.Acceptance.MessageAcceptor.InlineLimit);
        Assert.Equal("\r\n\r\n" + new string('y', 76), System.Text.Encoding.ASCII.GetString(stored, (int)spooled.BodyOffset - 4, 80));
        Assert.Empty(await Queued<IncomingEnvelope>(azurite.ConnectionString, QueueNames.Incoming));

        // A mail loop is refused while the client waits (Postfix: 554 at the end of DATA), not bounced to the sender.
        var loop = TestMail.Message("a@sender.test", "u@localhost", "looping");
        for (var i = 0; i < 49; i++)
            loop.Headers.Add("Received", $"from hop{i}.test by hop{i + 1}.test; Sat, 28 Nov 2026 11:00:00 +0000");
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => TestMail.SendAsync(mta.SmtpPort, loop));
        Assert.Equal((554, "5.4.6 Too many hops"), ((int)refused.StatusCode, refused.Message));
        Assert.Equal(2, (await Queued<DeliveryJob>(azurite.ConnectionString, QueueNames.Delivery)).Count);
        Assert.Empty(await Queued<ReportJob>(azurite.ConnectionString, QueueNames.Bounce));
    }

    [SkippableFact]
    public async Task A_cleanup_that_fails_part_way_leaves_the_message_to_the_cleanup_stage_marked()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var folder = TestEnvironment.TempFolder("checks");
        var header = Path.Combine(folder, "header_checks");
        await File.WriteAllTextAsync(header, "/^Subject: odd/ HOLD\n");
        // The table service is away for the ingress: a held message's hold record cannot be written after its job was
        // queued on the hold queue, which is what a storage fault between two writes looks like.
        var noTables = Azurite.ConnectionStringFor(azurite.BlobPort, azurite.QueuePort, TestEnvironment.FreeTcpPort(), azurite.Account);
        await using var mta = await MtaSystem.StartAsync(noTables, new Dictionary<string, string?>
        {
            ["Ingress:CleanupInline"] = "true",
            ["Mta:HeaderChecksFile"] = header,
        }, functions: false);

        var reply = await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "u@localhost", "odd one"));
        var id = reply[(reply.LastIndexOf(' ') + 1)..];
        var envelope = Assert.Single(await Queued<IncomingEnvelope>(azurite.ConnectionString, QueueNames.Incoming));
        Assert.Equal((id, true), (envelope.Id, envelope.MaybeQueued));
        Assert.Contains("Subject: odd one", System.Text.Encoding.UTF8.GetString(envelope.Content!));
        Assert.Equal(id + ".0", Assert.Single(await Queued<DeliveryJob>(azurite.ConnectionString, QueueNames.Hold)).JobId);
        Assert.Single(mta.Log.Matching($"{id}: cleanup before the reply failed, the message goes to the cleanup stage"));

        // A spooled one the same way; its blob stays, since the job already queued reads it.
        var large = await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "u@localhost", "odd two",
            string.Concat(Enumerable.Repeat(new string('y', 76) + "\n", 700))));
        var largeId = large[(large.LastIndexOf(' ') + 1)..];
        var spooled = Assert.Single(await Queued<IncomingEnvelope>(azurite.ConnectionString, QueueNames.Incoming), e => e.Id == largeId);
        Assert.Equal((null, true), (spooled.Content, spooled.MaybeQueued));
        Assert.Equal(2, (await Queued<DeliveryJob>(azurite.ConnectionString, QueueNames.Hold)).Count);

        // The cleanup stage's run of it marks its jobs, so delivery checks the completion records first.
        await using var functions = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:HeaderChecksFile"] = header,
        }, ingress: false);
        Assert.True(await TestEnvironment.EventuallyAsync(async () =>
            (await Queued<IncomingEnvelope>(azurite.ConnectionString, QueueNames.Incoming)).Count == 0
            && (await Queued<DeliveryJob>(azurite.ConnectionString, QueueNames.Hold)).Count == 4, TimeSpan.FromSeconds(60)));
        var held = await Queued<DeliveryJob>(azurite.ConnectionString, QueueNames.Hold);
        foreach (var message in new[] { id, largeId })
            Assert.Equal([false, true], held.Where(j => j.MessageId == message).Select(j => j.MaybeDuplicate).Order().ToList());
    }
}

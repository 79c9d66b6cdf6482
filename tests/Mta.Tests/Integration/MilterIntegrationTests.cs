using System.Text;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Milters with the ingress as it runs (a socket, storage, cleanup in the ingress or not): a large message is read
/// from the spool in chunks and its changes reach its delivery job; a quarantined one goes to the hold queue; without
/// cleanup in the ingress the changes and the hold travel on the incoming queue.
/// </summary>
public sealed class MilterIntegrationTests
{
    [SkippableFact]
    public async Task A_spooled_message_is_streamed_to_the_milter_and_its_job_carries_the_changes()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var milter = await ScriptedMilter.StartAsync();
        // A first milter that is down and may be passed over (default_action = accept): the chain goes on to the second.
        var down = $"inet:127.0.0.1:{TestEnvironment.FreeTcpPort()}";
        var health = TestEnvironment.FreeTcpPort();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:Milters"] = $"{{ {down}, default_action = accept, connect_timeout = 2s }}, {milter.Address}",
            ["Ingress:HealthPort"] = health.ToString(),
        }, functions: false);
        var body = string.Concat(Enumerable.Repeat(new string('z', 900) + "\n", 2500)); // 2.25 MB: staged to the spool block by block
        var message = TestMail.Message("a@sender.test", "u@remote.test", "large", body);
        message.Headers.Add("X-Remove-Me", "yes");

        var reply = await TestMail.SendAsync(mta.SmtpPort, message);
        var id = reply[(reply.LastIndexOf(' ') + 1)..];
        var job = Assert.Single(await QueuePeek.DeliveryAsync(azurite.ConnectionString));
        Assert.Equal(id, job.BlobName);
        var spool = new MessageSpool(TestEnvironment.Storage(azurite.ConnectionString));
        var sent = Encoding.ASCII.GetString([.. job.Header!, .. (await spool.ReadAsync(job.BlobName)).AsSpan((int)job.BodyOffset)]);
        Assert.StartsWith("Received: from ", sent);
        Assert.Contains("\r\nX-First-a: top\r\n", sent);
        Assert.Contains("\r\nX-Milter-a: seen\r\n", sent[..sent.IndexOf("\r\n\r\n")]);
        Assert.DoesNotContain("X-Remove-Me", sent);
        Assert.EndsWith(body.Replace("\n", "\r\n"), sent);

        // The milter read the body in chunks from the spool; the changed message has a new queue id, the original is gone.
        var events = await milter.EventsAfterAsync("eom");
        Assert.True(events.Count(e => e.Name == "body") >= 30, "the body did not come in 64 KiB chunks");
        var original = events.Single(e => e.Name == "eom").Macros["i"];
        Assert.NotEqual(id, original);
        Assert.False(await new Azure.Storage.Blobs.BlobContainerClient(azurite.ConnectionString, MessageSpool.ContainerName).GetBlobClient(original).ExistsAsync());

        // Per-milter metrics: its replies by event and kind, its latency, and the failure of the one that is down.
        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://127.0.0.1:{health}/metrics");
        string Series(string name, params string[] labels) => $@"(?m)^{name}\{{" + string.Concat(labels.Select(l => $"(?=[^}}]*{l})")) + @"[^}]*\} ";
        Assert.Matches(Series("mta_ingress_milter_replies_total", $@"milter=""{milter.Address}""", @"event=""EndOfMessage""", @"reply=""continue""") + "1$", text);
        Assert.Matches(Series("mta_ingress_milter_replies_total", $@"milter=""{milter.Address}""", @"event=""Body""", @"reply=""continue""") + "[3-9][0-9]$", text);
        Assert.Matches(Series("mta_ingress_milter_duration_seconds_count", $@"milter=""{milter.Address}""", @"event=""Connect""") + "1$", text);
        Assert.Matches(Series("mta_ingress_milter_failures_total", $@"milter=""{down}""", @"reason=""connect""") + "1$", text);
    }

    [SkippableFact]
    public async Task A_quarantined_message_is_held_and_without_cleanup_in_the_ingress_the_hold_travels_in_the_envelope()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var milter = await ScriptedMilter.StartAsync();
        await using (var mta = await MtaSystem.StartAsync(azurite.ConnectionString,
            new Dictionary<string, string?> { ["Ingress:Milters"] = milter.Address }, functions: false))
        {
            await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "u@remote.test", "quarantine"));
            Assert.Empty(await QueuePeek.DeliveryAsync(azurite.ConnectionString));
            Assert.Single(await QueuePeek.AllAsync<DeliveryJob>(azurite.ConnectionString, QueueNames.Hold));
        }
        await using var queued = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:Milters"] = milter.Address, ["Ingress:CleanupInline"] = "false",
        }, functions: false);
        await TestMail.SendAsync(queued.SmtpPort, TestMail.Message("a@sender.test", "u@remote.test", "quarantine"));
        await TestMail.SendAsync(queued.SmtpPort, TestMail.Message("a@sender.test", "u@remote.test", "fine"));
        var incoming = await QueuePeek.AllAsync<IncomingEnvelope>(azurite.ConnectionString, QueueNames.Incoming);
        Assert.Equal(2, incoming.Count);
        Assert.Equal("scripted quarantine", incoming.Single(e => Encoding.ASCII.GetString(e.Content!).Contains("Subject: quarantine")).Hold);
        var fine = incoming.Single(e => e.Hold is null);
        Assert.Contains("X-Milter-a: seen\r\n", Encoding.ASCII.GetString(fine.Content!));
    }
}

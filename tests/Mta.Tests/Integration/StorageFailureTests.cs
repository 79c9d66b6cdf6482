using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using MailKit.Net.Smtp;
using MimeKit;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>Nothing is half-accepted, and nothing malformed takes a stage down.</summary>
[RunsLong(67)]
public sealed class StorageFailureTests
{
    private static MimeMessage Message(string to, string token) => TestMail.Message("sender@example.org", to, token);

    [Fact]
    public async Task Storage_unreachable_gets_451_and_the_client_can_retry_once_it_is_back()
    {
        var (blobPort, queuePort, tablePort) = (TestEnvironment.FreeTcpPort(), TestEnvironment.FreeTcpPort(), TestEnvironment.FreeTcpPort());
        // Nothing listens on these ports yet: storage is down.
        await using var mta = await MtaSystem.StartAsync(Azurite.ConnectionStringFor(blobPort, queuePort, tablePort), functions: false);

        var token = Guid.NewGuid().ToString("N");
        using var client = new SmtpClient { Timeout = 120_000 };
        await client.ConnectAsync("127.0.0.1", mta.SmtpPort, MailKit.Security.SecureSocketOptions.None);
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => client.SendAsync(Message("user@localhost", token)));
        Assert.Equal(451, (int)refused.StatusCode);
        Assert.Contains("4.3.0", refused.Message + " " + refused.StatusCode);

        // Storage comes back on the same address; the same session sends again and is accepted.
        await using var azurite = await Azurite.StartAsync(blobPort, queuePort, tablePort);
        var reply = await client.SendAsync(Message("user@localhost", token));
        Assert.Contains("queued as", reply);
        await client.DisconnectAsync(true);

        // Exactly one message is queued, carrying its small body inline; the refused attempt left nothing behind.
        var job = Assert.Single(await QueuePeek.DeliveryAsync(azurite.ConnectionString)); // cleaned up in the ingress
        Assert.Equal(reply[(reply.LastIndexOf(' ') + 1)..], job.MessageId);
        var blobs = new BlobContainerClient(azurite.ConnectionString, MessageSpool.ContainerName);
        var names = new List<string>();
        if ((await blobs.ExistsAsync()).Value) // never created when nothing was spooled
            await foreach (var b in blobs.GetBlobsAsync()) names.Add(b.Name);
        Assert.NotNull(job.Content);
        Assert.Empty(names);
    }

    [Fact]
    public async Task Malformed_envelope_ends_in_the_poison_queue_and_the_stage_keeps_working()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            // Retry failed messages at once so maxDequeueCount (5, from host.json) is reached quickly.
            ["AzureFunctionsJobHost:extensions:queues:visibilityTimeout"] = "00:00:00",
        });
        var options = new QueueClientOptions { MessageEncoding = MailQueues.Encoding };
        var incoming = new QueueClient(azurite.ConnectionString, QueueNames.Incoming, options);
        var poison = new QueueClient(azurite.ConnectionString, QueueNames.Incoming + "-poison", options);
        await incoming.CreateIfNotExistsAsync();

        const string garbage = "{\"id\": 42, \"this is\": not json";
        await incoming.SendMessageAsync(garbage);
        await incoming.SendMessageAsync("{\"id\":\"X\",\"sender\":\"a@b\",\"recipients\":[],\"blobName\":\"none\"}");

        Assert.True(await TestEnvironment.EventuallyAsync(async () =>
            (await poison.ExistsAsync()).Value && (await poison.PeekMessagesAsync(maxMessages: 32)).Value.Length == 2,
            TimeSpan.FromSeconds(60)), "malformed envelopes did not reach incoming-poison");
        var texts = (await poison.PeekMessagesAsync(maxMessages: 32)).Value.Select(m => m.MessageText).ToList();
        Assert.Contains(garbage, texts);
        Assert.Empty((await incoming.PeekMessagesAsync()).Value);

        // The host is still up and delivering.
        await TestMail.SendAsync(mta.SmtpPort, Message("user@localhost", "after poison"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("user").Length == 1), TimeSpan.FromSeconds(60)));
    }
}

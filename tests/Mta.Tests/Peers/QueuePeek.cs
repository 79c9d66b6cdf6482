using Azure.Storage.Queues;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;

namespace Mta.Tests.Peers;

/// <summary>What waits on a queue, parsed as the stages parse it (a delivery queue message may hold several jobs); nothing is taken off.</summary>
public static class QueuePeek
{
    /// <summary>The visible messages of <paramref name="queue"/> (at most 32 queue messages); none when it does not exist yet.</summary>
    public static async Task<List<T>> AllAsync<T>(string storage, string queue) where T : class
    {
        var client = new QueueClient(storage, queue, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });
        if (!(await client.ExistsAsync()).Value) return [];
        return (await client.PeekMessagesAsync(maxMessages: 32)).Value.SelectMany(m => typeof(T) == typeof(DeliveryJob)
            ? DeliveryBatch.Parse(m.MessageText).Cast<T>() : [QueueJson.Deserialize<T>(m.MessageText)]).ToList();
    }

    /// <summary>The events waiting on the <c>events</c> queue (each queue message holds one or an array).</summary>
    public static async Task<List<Mta.Mail.Events.MailEvent>> EventsAsync(string storage)
    {
        var client = new QueueClient(storage, QueueNames.Events, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });
        if (!(await client.ExistsAsync()).Value) return [];
        return (await client.PeekMessagesAsync(maxMessages: 32)).Value.SelectMany(m => Mta.Mail.Events.MailEvent.ParseBatch(m.MessageText)).ToList();
    }

    /// <summary>The jobs waiting for delivery (the ingress's cleanup queues them there directly).</summary>
    public static Task<List<DeliveryJob>> DeliveryAsync(string storage) => AllAsync<DeliveryJob>(storage, QueueNames.Delivery);
}

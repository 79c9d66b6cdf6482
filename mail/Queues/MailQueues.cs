using Azure;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Storage;

namespace Mta.Mail.Queues;

/// <summary>
/// Puts stage messages on their queues. Messages are their JSON text as it is (host.json <c>messageEncoding</c>
/// <c>none</c>, not the trigger's default base64): the JSON is ASCII with control characters escaped, so it is safe
/// in the service's XML as it is, and base64 would only make every message a third larger and cost an encode and a
/// decode.
/// </summary>
public sealed class MailQueues
{
    /// <summary>The encoding every producer uses; must equal host.json's extensions.queues.messageEncoding.</summary>
    public const QueueMessageEncoding Encoding = QueueMessageEncoding.None;

    /// <summary>
    /// Queue messages live until consumed: the default 7-day time-to-live would silently drop mail
    /// during a long outage, and an accepted message must be delivered or bounced, never lost.
    /// </summary>
    private static readonly TimeSpan NeverExpires = TimeSpan.FromSeconds(-1);

    private readonly QueueServiceClient _service;
    private readonly Dictionary<string, QueueClient> _queues = new();
    private readonly GroupCommitWriter _delivery;
    private readonly GroupCommitWriter _events;

    /// <summary>Creates the producer for a storage account.</summary>
    public MailQueues(StorageConnection storage, QueueClientOptions? options = null)
    {
        options ??= new QueueClientOptions();
        options.MessageEncoding = Encoding;
        _service = storage.QueueService(options);
        foreach (var name in QueueNames.All)
            _queues[name] = _service.GetQueueClient(name);
        _delivery = new GroupCommitWriter((text, ct) => SendTextAsync(QueueNames.Delivery, text, null, ct));
        _events = new GroupCommitWriter((text, ct) => SendTextAsync(QueueNames.Events, text, null, ct), MaxEventsPerMessage);
    }

    /// <summary>The client for one of the system's queues.</summary>
    public QueueClient Get(string name) => _queues.TryGetValue(name, out var q)
        ? q : throw new ArgumentException($"unknown queue {name}", nameof(name));

    /// <summary>The poison queue of one of the system's queues, where the trigger moves messages that failed too often.</summary>
    public QueueClient GetPoison(string name) => QueueNames.All.Contains(name)
        ? _service.GetQueueClient(name + "-poison") : throw new ArgumentException($"unknown queue '{name}' (known: {string.Join(", ", QueueNames.All)})", nameof(name));

    /// <summary>Approximate message counts of every queue and poison queue (a missing queue counts 0).</summary>
    public async Task<IReadOnlyDictionary<string, int>> CountsAsync(CancellationToken ct = default)
    {
        var counts = new Dictionary<string, int>();
        foreach (var name in QueueNames.All)
            foreach (var (label, queue) in new[] { (name, Get(name)), (name + "-poison", GetPoison(name)) })
            {
                try { counts[label] = (await queue.GetPropertiesAsync(ct)).Value.ApproximateMessagesCount; }
                catch (RequestFailedException e) when (e.Status == 404) { counts[label] = 0; }
            }
        return counts;
    }

    /// <summary>Creates the queues (and their poison queues) if they do not exist yet.</summary>
    public async Task CreateIfNotExistsAsync(CancellationToken ct = default)
    {
        await Task.WhenAll(QueueNames.All.SelectMany(name => new[] { name, name + "-poison" })
            .Select(name => _service.GetQueueClient(name).CreateIfNotExistsAsync(cancellationToken: ct)));
    }

    /// <summary>
    /// Events in one <c>events</c> queue message at most (the 64 KiB bound comes first: about 120 events): under load a
    /// put, a receive, a delete and a webhook POST carry many.
    /// </summary>
    public const int MaxEventsPerMessage = 256;

    /// <summary>Azure Storage's largest queue message: 64 KiB of text.</summary>
    public const int MaxMessageText = 64 * 1024;

    /// <summary>
    /// Puts <paramref name="message"/> on <paramref name="queue"/> if it fits in one queue message once serialized,
    /// and returns its receipt; null (and nothing sent) when it does not fit. Serializes once.
    /// </summary>
    public async Task<SendReceipt?> TrySendAsync<T>(string queue, T message, CancellationToken ct = default)
    {
        var text = QueueJson.Serialize(message);
        if (System.Text.Encoding.UTF8.GetByteCount(text) > MaxMessageText) return null;
        return await SendTextAsync(queue, text, null, ct);
    }

    /// <summary>
    /// Puts a fresh delivery job on the <c>delivery</c> queue, together with other jobs for its next hop that are ready at
    /// the same time (group commit, see <see cref="GroupCommitWriter"/>). False (and nothing sent) when the job does not fit
    /// in a queue message on its own.
    /// </summary>
    public Task<bool> TrySendDeliveryAsync(DeliveryJob job, CancellationToken ct = default) => _delivery.TrySendAsync(job, ct);

    /// <summary>Puts an event on the <c>events</c> queue, together with others ready at the same time (group commit).</summary>
    public Task<bool> TrySendEventAsync(Events.MailEvent mailEvent, CancellationToken ct = default)
        => _events.TrySendAsync(QueueNames.Events, QueueJson.Serialize(mailEvent), ct);

    /// <summary>
    /// Serializes <paramref name="message"/> and puts it on <paramref name="queue"/>, visible after <paramref name="delay"/>.
    /// The receipt (message id and pop receipt) lets an operator change or delete the message later without seeing it.
    /// </summary>
    public Task<SendReceipt> SendAsync<T>(string queue, T message, CancellationToken ct = default, TimeSpan? delay = null)
        => SendTextAsync(queue, QueueJson.Serialize(message), delay, ct);

    /// <summary>Puts a queue message's text, already serialized, on <paramref name="queue"/>.</summary>
    public async Task<SendReceipt> SendTextAsync(string queue, string text, TimeSpan? delay, CancellationToken ct)
    {
        var client = Get(queue);
        return await CreateOnFirstUse.WriteAsync(() => client.SendMessageAsync(text, delay, NeverExpires, ct),
            () => client.CreateIfNotExistsAsync(cancellationToken: ct));
    }
}

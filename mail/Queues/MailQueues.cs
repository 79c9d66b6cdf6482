using Azure.Storage.Queues;
using Mta.Mail.Contracts;

namespace Mta.Mail.Queues;

/// <summary>
/// Puts stage messages on their queues. Messages are base64-encoded, which is the
/// Functions queue trigger's default <c>messageEncoding</c> (host.json states it too).
/// </summary>
public sealed class MailQueues
{
    /// <summary>The encoding every producer uses; must equal host.json's extensions.queues.messageEncoding.</summary>
    public const QueueMessageEncoding Encoding = QueueMessageEncoding.Base64;

    private readonly QueueServiceClient _service;
    private readonly Dictionary<string, QueueClient> _queues = new();

    /// <summary>Creates the producer for a storage account.</summary>
    public MailQueues(string connectionString, QueueClientOptions? options = null)
    {
        options ??= new QueueClientOptions();
        options.MessageEncoding = Encoding;
        _service = new QueueServiceClient(connectionString, options);
        foreach (var name in QueueNames.All)
            _queues[name] = _service.GetQueueClient(name);
    }

    /// <summary>The client for one of the system's queues.</summary>
    public QueueClient Get(string name) => _queues.TryGetValue(name, out var q)
        ? q : throw new ArgumentException($"unknown queue {name}", nameof(name));

    /// <summary>Creates the queues (and their poison queues) if they do not exist yet.</summary>
    public async Task CreateIfNotExistsAsync(CancellationToken ct = default)
    {
        foreach (var name in QueueNames.All)
        {
            await _service.GetQueueClient(name).CreateIfNotExistsAsync(cancellationToken: ct);
            await _service.GetQueueClient(name + "-poison").CreateIfNotExistsAsync(cancellationToken: ct);
        }
    }

    /// <summary>Puts a JSON message on a queue.</summary>
    public Task SendAsync<T>(string queue, T message, CancellationToken ct = default)
        => Get(queue).SendMessageAsync(QueueJson.Serialize(message), ct);
}

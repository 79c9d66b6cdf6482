using Azure.Storage.Queues.Models;
using Microsoft.Azure.Functions.Worker;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;

namespace Mta.Functions;

/// <summary>The cleanup stage: one accepted message's envelope in, delivery jobs out.</summary>
public sealed class CleanupFunction(CleanupStage stage)
{
    /// <summary>Triggered by an envelope on the <c>incoming</c> queue; the dequeue count tells a second run from the first.</summary>
    [Function("Cleanup")]
    public Task Run(
        [QueueTrigger(QueueNames.Incoming, Connection = StorageConnection.SettingName)] QueueMessage message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(QueueJson.Deserialize<IncomingEnvelope>(message.MessageText), cancellationToken, message.DequeueCount);
}

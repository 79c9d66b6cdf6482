using Azure.Storage.Queues.Models;
using Microsoft.Azure.Functions.Worker;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Queues;

namespace Mta.Functions;

/// <summary>
/// The delivery stages: one delivery job (a message and the recipients of one next hop), or on the <c>delivery</c> queue a
/// batch of jobs for one next hop that were queued together.
/// The dequeue count tells delivery when a job may have been finished by a worker that died. Two triggers, one piece of work: fresh jobs from <c>delivery</c>, and deferred jobs from
/// <c>deferred</c> once their backoff has passed — separate functions so each scales on its own queue.
/// </summary>
public sealed class DeliveryFunctions(DeliveryStage stage)
{
    /// <summary>Triggered by a job, or a batch of jobs, on the <c>delivery</c> queue.</summary>
    [Function("Delivery")]
    public Task Delivery(
        [QueueTrigger(QueueNames.Delivery, Connection = StorageConnection.SettingName)] QueueMessage message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(DeliveryBatch.Parse(message.MessageText), cancellationToken, message.DequeueCount);

    /// <summary>Triggered when a parked job on the <c>deferred</c> queue becomes visible (due).</summary>
    [Function("Retry")]
    public Task Retry(
        [QueueTrigger(QueueNames.Deferred, Connection = StorageConnection.SettingName)] QueueMessage message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(QueueJson.Deserialize<DeliveryJob>(message.MessageText), cancellationToken, message.DequeueCount, QueueNames.Deferred);
}

using Microsoft.Azure.Functions.Worker;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Queues;

namespace Mta.Functions;

/// <summary>
/// The retry stage: a deferred delivery job whose backoff has passed. Same work as
/// <see cref="DeliveryFunction"/>, on its own queue so parked mail scales nothing until it is due.
/// </summary>
public sealed class RetryFunction(DeliveryStage stage)
{
    /// <summary>Triggered when a job on the <c>deferred</c> queue becomes visible.</summary>
    [Function("Retry")]
    public Task Run(
        [QueueTrigger(QueueNames.Deferred, Connection = StorageConnection.SettingName)] string message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(QueueJson.Deserialize<DeliveryJob>(message), cancellationToken);
}

using Microsoft.Azure.Functions.Worker;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Queues;

namespace Mta.Functions;

/// <summary>The delivery stage: one delivery job (a message and the recipients of one next hop).</summary>
public sealed class DeliveryFunction(DeliveryStage stage)
{
    /// <summary>Triggered by a job on the <c>delivery</c> queue.</summary>
    [Function("Delivery")]
    public Task Run(
        [QueueTrigger(QueueNames.Delivery, Connection = StorageConnection.SettingName)] string message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(QueueJson.Deserialize<DeliveryJob>(message), cancellationToken);
}

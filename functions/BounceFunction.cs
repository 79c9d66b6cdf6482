using Microsoft.Azure.Functions.Worker;
using Mta.Mail.Bounce;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;

namespace Mta.Functions;

/// <summary>The bounce stage: permanently failed recipients in, a delivery status notification out.</summary>
public sealed class BounceFunction(BounceStage stage)
{
    /// <summary>Triggered by a job on the <c>bounce</c> queue.</summary>
    [Function("Bounce")]
    public Task Run(
        [QueueTrigger(QueueNames.Bounce, Connection = StorageConnection.SettingName)] string message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(QueueJson.Deserialize<ReportJob>(message), cancellationToken);
}

using Microsoft.Azure.Functions.Worker;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;

namespace Mta.Functions;

/// <summary>The cleanup stage: one accepted message's envelope in, delivery jobs out.</summary>
public sealed class CleanupFunction(CleanupStage stage)
{
    /// <summary>Triggered by an envelope on the <c>incoming</c> queue.</summary>
    [Function("Cleanup")]
    public Task Run(
        [QueueTrigger(QueueNames.Incoming, Connection = StorageConnection.SettingName)] string message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(QueueJson.Deserialize<IncomingEnvelope>(message), cancellationToken);
}

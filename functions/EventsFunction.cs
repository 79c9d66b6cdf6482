using Microsoft.Azure.Functions.Worker;
using Mta.Mail.Configuration;
using Mta.Mail.Events;
using Mta.Mail.Queues;

namespace Mta.Functions;

/// <summary>The webhook stage: recipients' outcomes in, POSTs to the senders' endpoints out.</summary>
public sealed class EventsFunction(WebhookStage stage)
{
    /// <summary>Triggered by a group of events on the <c>events</c> queue.</summary>
    [Function("Events")]
    public Task Run(
        [QueueTrigger(QueueNames.Events, Connection = StorageConnection.SettingName)] string message,
        CancellationToken cancellationToken)
        => stage.ProcessAsync(message, cancellationToken);
}

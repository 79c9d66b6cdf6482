using System.Text.Json;
using Google.Protobuf;
using Microsoft.Azure.WebJobs;
using Mta.Functions.Host.Protocol;
using Mta.Functions.Host.Triggers;

namespace Mta.Functions.Host.Invocation;

/// <summary>
/// Builds the InvocationRequest for one queue message as the Functions host builds it: the trigger value as the
/// function's input binding (ModelBindingData for a deferred binding, the message text otherwise), the queue
/// trigger's binding data as trigger metadata (text as strings, the rest as JSON), and an empty trace context,
/// which the worker requires.
/// </summary>
public static class InvocationRequests
{
    /// <summary>The Storage Queues trigger's binding data contract, as the host passes it on.</summary>
    public static readonly IReadOnlyList<string> QueueTriggerMetadata =
        ["QueueTrigger", "Id", "PopReceipt", "DequeueCount", "InsertionTime", "ExpirationTime", "NextVisibleTime"];

    /// <summary>One invocation of <paramref name="function"/>.</summary>
    /// <param name="function">The function invoked.</param>
    /// <param name="invocationId">A new id, which the response and any cancel carry.</param>
    /// <param name="trigger">The bound trigger value: <see cref="ParameterBindingData"/> or the message text.</param>
    /// <param name="bindingData">The trigger's binding data (<c>Binder.BindingData</c>).</param>
    public static InvocationRequest ForQueueMessage(QueueFunction function, string invocationId, object trigger,
        IReadOnlyDictionary<string, object?> bindingData)
    {
        var request = new InvocationRequest
        {
            InvocationId = invocationId,
            FunctionId = function.FunctionId,
            TraceContext = new RpcTraceContext(),
        };
        request.InputData.Add(new ParameterBinding { Name = function.ParameterName, Data = TriggerValue(trigger) });
        foreach (var name in QueueTriggerMetadata)
            if (bindingData.TryGetValue(name, out var value) && value is not null)
                request.TriggerMetadata[name] = Metadata(value);
        return request;
    }

    /// <summary>The trigger value as the worker receives it.</summary>
    public static TypedData TriggerValue(object trigger) => trigger switch
    {
        ParameterBindingData p => new TypedData
        {
            ModelBindingData = new ModelBindingData
            {
                Version = p.Version, Source = p.Source, ContentType = p.ContentType,
                Content = UnsafeByteOperations.UnsafeWrap(p.Content.ToMemory()),
            },
        },
        string text => new TypedData { String = text },
        _ => throw new NotSupportedException($"a trigger value of type {trigger.GetType()} cannot be sent to the worker"),
    };

    private static TypedData Metadata(object value) => value is string s
        ? new TypedData { String = s }
        : new TypedData { Json = JsonSerializer.Serialize(value, value.GetType()) };
}

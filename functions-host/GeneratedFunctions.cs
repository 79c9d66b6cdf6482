using System.Reflection;
using System.Reflection.Emit;
using Azure.Storage.Queues.Models;
using Microsoft.Azure.WebJobs;

namespace Mta.Functions.Host;

/// <summary>
/// Base of the classes generated for the WebJobs SDK: each generated method only forwards its
/// queue message (with its metadata, such as the dequeue count) to the <see cref="FunctionDispatcher"/>. Public so the generated assembly can derive from it.
/// </summary>
public abstract class GeneratedQueueFunction(FunctionDispatcher dispatcher)
{
    /// <summary>Forwards one invocation.</summary>
    protected Task Invoke(string functionName, QueueMessage message, CancellationToken cancellationToken)
        => dispatcher.InvokeAsync(functionName, message, cancellationToken);
}

/// <summary>
/// Turns functions.metadata entries into classes the WebJobs SDK indexes, as the Functions host
/// itself does for script functions: one class per function, with <c>[FunctionName]</c> on the
/// method and <c>[QueueTrigger(queue, Connection = ...)]</c> on its message parameter, values
/// taken from the metadata and nothing else.
/// </summary>
public static class GeneratedFunctions
{
    /// <summary>Emits one class per function.</summary>
    public static IReadOnlyList<Type> Emit(IEnumerable<QueueFunction> functions)
    {
        var assembly = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName("Mta.Functions.Host.Generated"), AssemblyBuilderAccess.Run);
        var module = assembly.DefineDynamicModule("Generated");
        var baseCtor = typeof(GeneratedQueueFunction).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public).Single();
        var invoke = typeof(GeneratedQueueFunction).GetMethod("Invoke", BindingFlags.Instance | BindingFlags.NonPublic)!;
        var types = new List<Type>();
        foreach (var f in functions)
        {
            var type = module.DefineType("Mta.Functions.Generated." + f.Name, TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class, typeof(GeneratedQueueFunction));

            var ctor = type.DefineConstructor(MethodAttributes.Public, CallingConventions.Standard, [typeof(FunctionDispatcher)]);
            var il = ctor.GetILGenerator();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, baseCtor);
            il.Emit(OpCodes.Ret);

            var run = type.DefineMethod("Run", MethodAttributes.Public, typeof(Task), [typeof(QueueMessage), typeof(CancellationToken)]);
            run.SetCustomAttribute(new CustomAttributeBuilder(typeof(FunctionNameAttribute).GetConstructor([typeof(string)])!, [f.Name]));
            var message = run.DefineParameter(1, ParameterAttributes.None, "message");
            message.SetCustomAttribute(new CustomAttributeBuilder(
                typeof(QueueTriggerAttribute).GetConstructor([typeof(string)])!, [f.QueueName],
                [typeof(QueueTriggerAttribute).GetProperty(nameof(QueueTriggerAttribute.Connection))!], [f.Connection]));
            run.DefineParameter(2, ParameterAttributes.None, "cancellationToken");
            il = run.GetILGenerator();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldstr, f.Name);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldarg_2);
            il.Emit(OpCodes.Call, invoke);
            il.Emit(OpCodes.Ret);

            types.Add(type.CreateType());
        }
        return types;
    }
}

/// <summary>Hands the WebJobs SDK exactly the generated types to index, and no others.</summary>
internal sealed class GeneratedTypeLocator(IReadOnlyList<Type> types) : ITypeLocator
{
    public IReadOnlyList<Type> GetTypes() => types;
}

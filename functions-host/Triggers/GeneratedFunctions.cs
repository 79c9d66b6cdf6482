using System.Reflection;
using System.Reflection.Emit;
using Microsoft.Azure.WebJobs;
using Mta.Functions.Host.Invocation;

namespace Mta.Functions.Host.Triggers;

/// <summary>
/// Base of the classes generated for the WebJobs SDK: a generated method only hands its trigger value and the
/// trigger's binding data to the <see cref="FunctionInvoker"/>, which invokes the function in the worker. Public so
/// the generated assembly can derive from it.
/// </summary>
public abstract class QueueTriggeredFunction(FunctionInvoker invoker)
{
    /// <summary>Forwards one invocation.</summary>
    protected Task Invoke(string functionName, object message, Microsoft.Azure.WebJobs.Binder binder, CancellationToken cancellationToken)
        => invoker.InvokeAsync(functionName, message, binder.BindingData, cancellationToken);
}

/// <summary>
/// Turns the worker's queue functions into classes the WebJobs SDK indexes, as the Functions host does for the
/// functions a language worker reports: one class per function, <c>[FunctionName]</c> on its method and
/// <c>[QueueTrigger(queue, Connection = ...)]</c> on the trigger parameter. The parameter's type makes the Storage
/// Queues extension bind the message as the host binds it for the worker: <see cref="ParameterBindingData"/>
/// (the extension's own ModelBindingData content) for deferred bindings, else the message text.
/// </summary>
public static class GeneratedFunctions
{
    /// <summary>Emits one class per function.</summary>
    public static IReadOnlyList<Type> Emit(IEnumerable<QueueFunction> functions)
    {
        var assembly = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName("Mta.Functions.Host.Generated"), AssemblyBuilderAccess.Run);
        var module = assembly.DefineDynamicModule("Generated");
        return functions.Select(f => EmitOne(module, f)).ToList();
    }

    private static Type EmitOne(ModuleBuilder module, QueueFunction f)
    {
        var baseCtor = typeof(QueueTriggeredFunction).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public).Single();
        var invoke = typeof(QueueTriggeredFunction).GetMethod("Invoke", BindingFlags.Instance | BindingFlags.NonPublic)!;
        var type = module.DefineType("Mta.Functions.Generated." + f.Name, TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class, typeof(QueueTriggeredFunction));

        var ctor = type.DefineConstructor(MethodAttributes.Public, CallingConventions.Standard, [typeof(FunctionInvoker)]);
        var il = ctor.GetILGenerator();
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, baseCtor);
        il.Emit(OpCodes.Ret);

        var triggerType = f.DeferredBinding ? typeof(ParameterBindingData) : typeof(string);
        var run = type.DefineMethod("Run", MethodAttributes.Public, typeof(Task), [triggerType, typeof(Microsoft.Azure.WebJobs.Binder), typeof(CancellationToken)]);
        run.SetCustomAttribute(new CustomAttributeBuilder(typeof(FunctionNameAttribute).GetConstructor([typeof(string)])!, [f.Name]));
        var message = run.DefineParameter(1, ParameterAttributes.None, f.ParameterName);
        message.SetCustomAttribute(new CustomAttributeBuilder(
            typeof(QueueTriggerAttribute).GetConstructor([typeof(string)])!, [f.QueueName],
            [typeof(QueueTriggerAttribute).GetProperty(nameof(QueueTriggerAttribute.Connection))!], [f.Connection]));
        run.DefineParameter(2, ParameterAttributes.None, "binder");
        run.DefineParameter(3, ParameterAttributes.None, "cancellationToken");
        il = run.GetILGenerator();
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldstr, f.Name);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldarg_2);
        il.Emit(OpCodes.Ldarg_3);
        il.Emit(OpCodes.Call, invoke);
        il.Emit(OpCodes.Ret);
        return type.CreateType();
    }
}

/// <summary>Hands the WebJobs SDK the generated types of the functions the worker loaded, and no others.</summary>
internal sealed class GeneratedTypeLocator(Func<IReadOnlyList<Type>> types) : ITypeLocator
{
    public IReadOnlyList<Type> GetTypes() => types();
}

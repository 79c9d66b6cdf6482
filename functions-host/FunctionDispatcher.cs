using System.Reflection;
using Azure.Storage.Queues.Models;
using Microsoft.Extensions.DependencyInjection;

namespace Mta.Functions.Host;

/// <summary>
/// Calls a worker function's entry point the way the isolated worker does: a new instance of the
/// function class per invocation, constructor arguments from DI, the trigger payload and the
/// cancellation token as parameters.
/// </summary>
public sealed class FunctionDispatcher
{
    private readonly IServiceProvider _services;
    private readonly Dictionary<string, (Type Type, MethodInfo Method, ObjectFactory Factory)> _entries;

    /// <summary>Resolves every function's entry point up front, so a bad metadata file fails at start.</summary>
    public FunctionDispatcher(IServiceProvider services, IEnumerable<QueueFunction> functions)
    {
        _services = services;
        _entries = functions.ToDictionary(f => f.Name, Resolve, StringComparer.Ordinal);
    }

    private static (Type, MethodInfo, ObjectFactory) Resolve(QueueFunction f)
    {
        var assembly = Assembly.Load(Path.GetFileNameWithoutExtension(f.ScriptFile));
        var dot = f.EntryPoint.LastIndexOf('.');
        var type = assembly.GetType(f.EntryPoint[..dot], throwOnError: true)!;
        var method = type.GetMethod(f.EntryPoint[(dot + 1)..], BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static)
            ?? throw new MissingMethodException(type.FullName, f.EntryPoint[(dot + 1)..]);
        if (!typeof(Task).IsAssignableFrom(method.ReturnType) && method.ReturnType != typeof(void))
            throw new NotSupportedException($"{f.EntryPoint}: return type {method.ReturnType} is not supported");
        return (type, method, ActivatorUtilities.CreateFactory(type, Type.EmptyTypes));
    }

    /// <summary>Runs one invocation of <paramref name="functionName"/> with a queue message (bound as its text or whole).</summary>
    public async Task InvokeAsync(string functionName, QueueMessage message, CancellationToken cancellationToken)
    {
        var (_, method, factory) = _entries[functionName];
        await using var scope = _services.CreateAsyncScope();
        var instance = method.IsStatic ? null : factory(scope.ServiceProvider, null);
        var args = method.GetParameters().Select(p =>
            p.ParameterType == typeof(string) ? message.MessageText
            : p.ParameterType == typeof(QueueMessage) ? message
            : p.ParameterType == typeof(CancellationToken) ? (object)cancellationToken
            : throw new NotSupportedException($"{functionName}: parameter {p.Name} of type {p.ParameterType} cannot be bound by the local host"))
            .ToArray();
        try
        {
            if (method.Invoke(instance, args) is Task task)
                await task;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
        }
        finally
        {
            if (instance is IAsyncDisposable ad) await ad.DisposeAsync();
            else if (instance is IDisposable d) d.Dispose();
        }
    }
}

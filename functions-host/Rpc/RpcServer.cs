using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Worker;

namespace Mta.Functions.Host.Rpc;

/// <summary>
/// The gRPC endpoint workers connect to: HTTP/2 without TLS on a loopback port of its own (chosen by the system),
/// as the Functions host listens for its language workers. Messages of any size, as the host allows.
/// </summary>
/// <remarks>
/// The socket listens (<see cref="Listen"/>) before Kestrel runs on it, so a worker can be launched with the port at
/// once and start up while Kestrel does: its connection waits in the socket's backlog.
/// </remarks>
public sealed class RpcServer(WorkerConnections connections, RpcLogRelay logs) : IAsyncDisposable
{
    private IHost? _host;
    private ulong? _handle;

    /// <summary>The port, once listening.</summary>
    public int Port { get; private set; }

    /// <summary>Binds and listens on a loopback port the system chooses; returns it. Kestrel takes the socket over in <see cref="StartAsync"/>.</summary>
    public int Listen()
    {
        if (_handle is not null) return Port;
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(64);
        Port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        _handle = (ulong)socket.SafeHandle.DangerousGetHandle();
        socket.SafeHandle.SetHandleAsInvalid(); // the descriptor is Kestrel's from now on: it closes it
        return Port;
    }

    /// <summary>Starts serving on the listening socket (listening first if <see cref="Listen"/> was not called).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Listen();
        var handle = _handle!.Value;
        // A bare host: no appsettings or environment of its own, only Kestrel and the gRPC service. Its own lines
        // (Kestrel, requests) from Warning up; the workers' logs go through the relay.
        _host = new HostBuilder()
            // Stopped by the supervisor after its worker, never by a signal of its own: SIGTERM is the main host's to handle.
            .ConfigureServices(services => services.AddSingleton<IHostLifetime, OwnedLifetime>())
            .ConfigureLogging(logging => logging
                .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
                .SetMinimumLevel(LogLevel.Warning))
            .ConfigureWebHost(web => web
                .UseKestrel(k => k.ListenHandle(handle, l => l.Protocols = HttpProtocols.Http2))
                .ConfigureServices(services =>
                {
                    services.AddSingleton(connections);
                    services.AddSingleton(logs);
                    services.AddGrpc(o =>
                    {
                        o.MaxReceiveMessageSize = null;
                        o.MaxSendMessageSize = null;
                        o.EnableDetailedErrors = true;
                    });
                })
                .Configure(app => app.UseRouting().UseEndpoints(e => e.MapGrpcService<FunctionRpcService>())))
            .Build();
        await _host.StartAsync(cancellationToken);
    }

    /// <summary>Stops listening; open streams end.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_host is not null) await _host.StopAsync(cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _host?.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A host lifetime that waits for nothing and listens for no signal: the owner starts and stops the host.</summary>
internal sealed class OwnedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

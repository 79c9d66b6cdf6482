using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mta.Functions.Host.Worker;

namespace Mta.Functions.Host.Rpc;

/// <summary>
/// The gRPC endpoint workers connect to: HTTP/2 without TLS on a loopback port of its own (chosen by the system),
/// as the Functions host listens for its language workers. Messages of any size, as the host allows.
/// </summary>
public sealed class RpcServer(WorkerConnections connections, RpcLogRelay logs) : IAsyncDisposable
{
    private IHost? _host;

    /// <summary>The port, once started.</summary>
    public int Port { get; private set; }

    /// <summary>Starts listening.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // A bare host: no appsettings or environment of its own, only Kestrel and the gRPC service. Its own lines
        // (Kestrel, requests) from Warning up; the workers' logs go through the relay.
        _host = new HostBuilder()
            // Stopped by the supervisor after its worker, never by a signal of its own: SIGTERM is the main host's to handle.
            .ConfigureServices(services => services.AddSingleton<IHostLifetime, OwnedLifetime>())
            .ConfigureLogging(logging => logging
                .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
                .SetMinimumLevel(LogLevel.Warning))
            .ConfigureWebHost(web => web
                .UseKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2))
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
        var address = _host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        Port = new Uri(address).Port;
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

using Microsoft.Extensions.Hosting;
using Mta.Functions.Host.Configuration;

namespace Mta.Functions.Host.Invocation;

/// <summary>
/// The shutdown grace period: registered after the queue listener, so it is stopped first, as soon as the host
/// begins to stop; from then invocations in flight have <see cref="FunctionsHostOptions.ShutdownGracePeriod"/> to
/// finish before they are cancelled, while the listener stops taking messages.
/// </summary>
public sealed class ShutdownGrace(FunctionsHostOptions options) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _expired = new();

    /// <summary>Fires when the grace period is over.</summary>
    public CancellationToken Expired => _expired.Token;

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken)
    {
        _expired.CancelAfter(options.ShutdownGracePeriod);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public void Dispose() => _expired.Dispose();
}

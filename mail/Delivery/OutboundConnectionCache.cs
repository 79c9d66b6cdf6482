using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Mail.Delivery;

/// <summary>
/// Postfix's connection cache (scache) inside one delivery worker: after a transaction, a healthy
/// connection waits a short while (<see cref="MtaOptions.SmtpConnectionCacheTimeLimitSeconds"/>) for the next
/// job to the same destination, so bulk mail does not pay a new TCP and TLS handshake per message.
/// Bounded per destination, and never reused past <see cref="MtaOptions.SmtpConnectionReuseTimeLimitSeconds"/>.
/// </summary>
internal sealed class OutboundConnectionCache : IDisposable
{
    private sealed record Idle(OutboundSmtpConnection Client, DateTimeOffset Since);

    private readonly Dictionary<string, Stack<Idle>> _idle = new(StringComparer.OrdinalIgnoreCase);
    private readonly MtaOptions _options;
    private readonly TimeProvider _clock;
    private readonly ITimer _sweep;
    private readonly Func<OutboundSmtpConnection, bool> _mayKeep;

    /// <summary>A cache; <paramref name="mayKeep"/> has the last word on keeping a connection (traffic shaping's limits).</summary>
    public OutboundConnectionCache(IOptions<MtaOptions> options, TimeProvider clock, Func<OutboundSmtpConnection, bool> mayKeep)
    {
        _options = options.Value;
        _clock = clock;
        _mayKeep = mayKeep;
        _sweep = clock.CreateTimer(_ => Sweep(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private bool Enabled => _options.SmtpConnectionCacheTimeLimitSeconds > 0;

    /// <summary>An idle connection to <paramref name="destination"/>, newest first; null when there is none.</summary>
    public OutboundSmtpConnection? Take(string destination)
    {
        if (!Enabled) return null;
        lock (_idle)
        {
            if (!_idle.TryGetValue(destination, out var stack)) return null;
            while (stack.TryPop(out var idle))
                if (Fresh(idle)) return idle.Client;
                else Close(idle.Client);
            return null;
        }
    }

    /// <summary>Keeps a connection for the next job to <paramref name="destination"/>, or closes it when it may not be kept.</summary>
    public void Return(string destination, OutboundSmtpConnection client)
    {
        var now = _clock.GetUtcNow();
        var keep = Enabled && !client.Broken
            && now - client.ConnectedAt < TimeSpan.FromSeconds(_options.SmtpConnectionReuseTimeLimitSeconds)
            && _mayKeep(client);
        if (keep)
        {
            lock (_idle)
            {
                if (!_idle.TryGetValue(destination, out var stack)) _idle[destination] = stack = new Stack<Idle>();
                if (stack.Count < Math.Max(1, _options.SmtpConnectionCacheDestinationLimit))
                {
                    stack.Push(new Idle(client, now));
                    return;
                }
            }
        }
        Close(client);
    }

    private bool Fresh(Idle idle)
        => _clock.GetUtcNow() - idle.Since < TimeSpan.FromSeconds(_options.SmtpConnectionCacheTimeLimitSeconds)
           && !idle.Client.Broken;

    private void Sweep()
    {
        var stale = new List<OutboundSmtpConnection>();
        lock (_idle)
        {
            foreach (var (destination, stack) in _idle.ToList())
            {
                var oldestFirst = stack.Reverse().ToList();
                stack.Clear();
                foreach (var idle in oldestFirst)
                    if (Fresh(idle)) stack.Push(idle);
                    else stale.Add(idle.Client);
                if (stack.Count == 0) _idle.Remove(destination);
            }
        }
        foreach (var c in stale) Close(c);
    }

    /// <summary>QUIT and close, in the background: nobody waits for a goodbye.</summary>
    private static void Close(OutboundSmtpConnection client) => _ = Task.Run(client.QuitAsync);

    public void Dispose()
    {
        _sweep.Dispose();
        lock (_idle)
        {
            foreach (var stack in _idle.Values)
                foreach (var idle in stack) Close(idle.Client);
            _idle.Clear();
        }
    }
}

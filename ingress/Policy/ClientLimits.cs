using System.Net;
using Microsoft.Extensions.Options;

namespace Mta.Ingress.Policy;

/// <summary>
/// Postfix's anvil for the ingress: at most <see cref="IngressOptions.MaxConnections"/> sessions in all,
/// <see cref="IngressOptions.MaxConnectionsPerClient"/> from one address at once, and
/// <see cref="IngressOptions.ConnectionRatePerClient"/> new connections per address per minute.
/// Trusted networks are exempt (Postfix <c>smtpd_client_event_limit_exceptions = $mynetworks</c>).
/// Counts are per ingress replica: the Service spreads clients over replicas. A client is its <see cref="ClientGroup"/>
/// (IPv6 counted by /64 by default).
/// </summary>
public sealed class ClientLimits(IOptions<IngressOptions> options, RelayPolicy relay, TimeProvider clock)
{
    private readonly IngressOptions _o = options.Value;
    private readonly ClientGroup _groups = ClientGroup.From(options.Value);
    private readonly Dictionary<string, int> _open = new();
    private readonly Dictionary<string, Queue<DateTimeOffset>> _recent = new();
    private readonly Lock _lock = new();
    private int _total;

    /// <summary>A held connection slot; disposing it frees the slot.</summary>
    public sealed class Slot(Action release) : IDisposable
    {
        private Action? _release = release;

        /// <inheritdoc />
        public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var (address, times) in _recent.ToList())
            if (times.Count == 0 || now - times.Last() >= TimeSpan.FromMinutes(1))
                _recent.Remove(address);
    }

    /// <summary>Takes a slot for a new connection, or says (as an SMTP reply text) why not.</summary>
    public Slot? TryEnter(IPAddress client, out string refusal)
    {
        refusal = "";
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        var exempt = relay.IsTrusted(client);
        var key = _groups.Of(client);
        lock (_lock)
        {
            if (_o.MaxConnections > 0 && _total >= _o.MaxConnections)
            {
                refusal = "421 4.3.2 Service not available, too many connections";
                return null;
            }
            if (!exempt && _o.ConnectionRatePerClient > 0)
            {
                // Every attempt counts, refused ones too (as anvil counts connects).
                var now = clock.GetUtcNow();
                if (_recent.Count > 4096) Prune(now); // bounded memory when many addresses connect
                var recent = _recent.TryGetValue(key, out var q) ? q : _recent[key] = new Queue<DateTimeOffset>();
                while (recent.Count > 0 && now - recent.Peek() >= TimeSpan.FromMinutes(1)) recent.Dequeue();
                recent.Enqueue(now);
                if (recent.Count > _o.ConnectionRatePerClient)
                {
                    refusal = $"421 4.7.0 Error: too many connections from {client}";
                    return null;
                }
            }
            var open = _open.GetValueOrDefault(key);
            if (!exempt && _o.MaxConnectionsPerClient > 0 && open >= _o.MaxConnectionsPerClient)
            {
                refusal = $"421 4.7.0 Error: too many connections from {client}";
                return null;
            }
            _total++;
            _open[key] = open + 1;
        }
        return new Slot(() =>
        {
            lock (_lock)
            {
                _total--;
                if (--_open[key] == 0) _open.Remove(key);
            }
        });
    }
}

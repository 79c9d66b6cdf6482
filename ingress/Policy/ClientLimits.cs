using System.Net;
using Microsoft.Extensions.Options;

namespace Mta.Ingress.Policy;

/// <summary>
/// Postfix's anvil for the ingress's concurrent sessions: at most <see cref="IngressOptions.MaxConnections"/> sessions in
/// all, <see cref="IngressOptions.MaxConnectionsPerClient"/> from one client at once. Trusted networks are exempt (Postfix
/// <c>smtpd_client_event_limit_exceptions = $mynetworks</c>). Counted per replica, unlike the rates
/// (<see cref="ClientRates"/>): a session lives on one replica, so its count is exact there and needs no storage, and a
/// cluster-wide count would have to be given back by a replica that dies mid-session — a lease per session, for a limit
/// whose point (one client must not take every session slot of a replica) is per replica anyway. A client is its <see cref="ClientGroup"/>
/// (IPv6 counted by /64 by default).
/// </summary>
public sealed class ClientLimits(IOptions<IngressOptions> options, RelayPolicy relay)
{
    private readonly IngressOptions _o = options.Value;
    private readonly ClientGroup _groups = ClientGroup.From(options.Value);
    private readonly Dictionary<string, int> _open = new();
    private readonly Lock _lock = new();
    private int _total;

    /// <summary>A held connection slot; disposing it frees the slot.</summary>
    public sealed class Slot(Action release) : IDisposable
    {
        private Action? _release = release;

        /// <inheritdoc />
        public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
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

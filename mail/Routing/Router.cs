using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;

namespace Mta.Mail.Routing;

/// <summary>
/// Postfix's trivial-rewrite decision for a recipient: a local domain goes to the Maildir store,
/// a transport map entry wins next, then the relay host (smarthost) when one is set, and everything
/// else goes by SMTP to its domain's MX hosts.
/// </summary>
public sealed class Router
{
    private readonly HashSet<string> _localDomains;
    private readonly TransportMap _transports;
    private readonly NextHop _local;
    private readonly NextHop? _relayHost;

    /// <summary>Builds a router from the MTA options and a transport map.</summary>
    public Router(IOptions<MtaOptions> options, TransportMap transports)
    {
        _local = TransportMap.ParseNextHop(options.Value.LocalTransport, "", "Mta:LocalTransport");
        _localDomains = new HashSet<string>(options.Value.LocalDomains.Select(Address.NormalizeDomain), StringComparer.OrdinalIgnoreCase);
        _transports = transports;
        var relayHost = options.Value.RelayHost;
        if (!string.IsNullOrWhiteSpace(relayHost))
            _relayHost = TransportMap.ParseNextHop("smtp:" + relayHost.Trim(), "", "Mta:RelayHost");
    }

    /// <summary>
    /// Whether <paramref name="hop"/> is one the administrator named — an entry of the transport map, the relay host or
    /// the local transport — rather than a recipient domain's own mail hosts.
    /// </summary>
    public bool IsConfigured(NextHop hop) =>
        hop.Transport == Transport.Local
        || _relayHost is { } relay && relay.Host.Equals(hop.Host, StringComparison.OrdinalIgnoreCase)
        || _local.Host.Length > 0 && _local.Host.Equals(hop.Host, StringComparison.OrdinalIgnoreCase)
        || _transports.Names(hop.Host);

    /// <summary>The next hop for one recipient address.</summary>
    public NextHop Resolve(string recipient)
    {
        var domain = Address.DomainOf(recipient);
        if (_localDomains.Contains(domain))
            return _local;
        return _transports.Find(domain)
            ?? _relayHost
            ?? new NextHop { Transport = Transport.Smtp, Host = domain, MxLookup = true };
    }

    /// <summary>
    /// Groups recipients by next hop, at most <paramref name="limit"/> per group, keeping the
    /// client's recipient order within each group.
    /// </summary>
    public IEnumerable<(NextHop Hop, IReadOnlyList<string> Recipients)> Group(IEnumerable<string> recipients, int limit)
    {
        foreach (var group in recipients.GroupBy(Resolve))
            foreach (var chunk in group.Chunk(Math.Max(1, limit)))
                yield return (group.Key, chunk);
    }
}

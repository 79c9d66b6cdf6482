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
    private readonly Rewriting.LookupTable _senderRelays;

    /// <summary>Builds a router from the MTA options and a transport map.</summary>
    public Router(IOptions<MtaOptions> options, TransportMap transports)
    {
        _local = TransportMap.ParseNextHop(options.Value.LocalTransport, "", "Mta:LocalTransport");
        _localDomains = new HashSet<string>(options.Value.LocalDomains.Select(Address.NormalizeDomain), StringComparer.OrdinalIgnoreCase);
        _transports = transports;
        var relayHost = options.Value.RelayHost;
        if (!string.IsNullOrWhiteSpace(relayHost)) _relayHost = ParseRelayHost(relayHost, "Mta:RelayHost");
        _senderRelays = Rewriting.LookupTable.Load(options.Value.SenderDependentRelayHostMapsFile);
    }

    /// <summary>
    /// A relay host as <c>relayhost</c> writes it: <c>[host]:port</c> (no MX lookup) or <c>domain[:port]</c>; or with
    /// <c>smtps:</c> in front, implicit TLS (port 465 unless given).
    /// </summary>
    public static NextHop ParseRelayHost(string value, string where)
    {
        value = value.Trim();
        return TransportMap.ParseNextHop(value.StartsWith("smtps:", StringComparison.OrdinalIgnoreCase) ? value : "smtp:" + value, "", where);
    }

    /// <summary>
    /// Postfix's <c>sender_dependent_relayhost_maps</c>: the relay host for mail from <paramref name="sender"/>, looked up
    /// by the address, then its <c>@domain</c>; null when neither is listed.
    /// </summary>
    private NextHop? SenderRelayHost(string sender)
    {
        if (sender.Length == 0 || _senderRelays.Count == 0) return null;
        var value = _senderRelays.Find(sender) ?? _senderRelays.Find("@" + Address.DomainOf(sender));
        return value is null ? null : ParseRelayHost(value, "Mta:SenderDependentRelayHostMapsFile");
    }

    /// <summary>
    /// Whether <paramref name="hop"/> is one the administrator named — an entry of the transport map, the relay host or
    /// the local transport — rather than a recipient domain's own mail hosts.
    /// </summary>
    public bool IsConfigured(NextHop hop) =>
        hop.Transport == Transport.Local
        || _relayHost is { } relay && relay.Host.Equals(hop.Host, StringComparison.OrdinalIgnoreCase)
        || _senderRelays.Entries.Any(e => ParseRelayHost(e.Value, "Mta:SenderDependentRelayHostMapsFile").Host.Equals(hop.Host, StringComparison.OrdinalIgnoreCase))
        || _local.Host.Length > 0 && _local.Host.Equals(hop.Host, StringComparison.OrdinalIgnoreCase)
        || _transports.Names(hop.Host);

    /// <summary>
    /// The next hop for one recipient address of mail from <paramref name="sender"/>, in Postfix's order: a local domain,
    /// the transport map, the sender-dependent relay host, the relay host, the domain's MX hosts.
    /// </summary>
    public NextHop Resolve(string recipient, string sender = "")
    {
        var domain = Address.DomainOf(recipient);
        if (_localDomains.Contains(domain))
            return _local;
        return _transports.Find(domain)
            ?? SenderRelayHost(sender)
            ?? _relayHost
            ?? new NextHop { Transport = Transport.Smtp, Host = domain, MxLookup = true };
    }

    /// <summary>
    /// Groups recipients by next hop, at most <paramref name="limit"/> per group, keeping the
    /// client's recipient order within each group.
    /// </summary>
    public IEnumerable<(NextHop Hop, IReadOnlyList<string> Recipients)> Group(IEnumerable<string> recipients, int limit, string sender = "")
    {
        foreach (var group in recipients.GroupBy(r => Resolve(r, sender)))
            foreach (var chunk in group.Chunk(Math.Max(1, limit)))
                yield return (group.Key, chunk);
    }
}

using System.Net;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Routing;

namespace Mta.Mail.Delivery;

/// <summary>
/// Where delivery may connect: not to loopback, private, link-local (the cloud metadata endpoint among them), carrier-NAT
/// or cluster addresses that a recipient domain's MX record (or an MTA-STS policy host) points at — a way into the
/// cluster for anyone who controls some DNS. A next hop the administrator named (<c>Mta:TransportMapFile</c>,
/// <c>Mta:RelayHost</c>, <c>Mta:LocalTransport</c>) may be anywhere.
/// </summary>
public sealed class DeliveryTargets(IOptions<MtaOptions> options, Router router)
{
    /// <summary>The networks refused by default (<c>Mta:InternalNetworks</c>).</summary>
    public static readonly IReadOnlyList<string> DefaultInternalNetworks =
    [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
        "224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    ];

    private readonly IPNetwork[] _internal = (options.Value.InternalNetworks.Count > 0 ? options.Value.InternalNetworks : DefaultInternalNetworks)
        .Select(n => IPNetwork.TryParse(n, out var net) ? net : throw new FormatException($"Mta:InternalNetworks: '{n}' is not CIDR notation"))
        .ToArray();

    /// <summary>Whether <paramref name="address"/> is internal (IPv4-mapped IPv6 judged as IPv4).</summary>
    public bool IsInternal(IPAddress address)
    {
        if (options.Value.DeliverToInternalNetworks) return false;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        return _internal.Any(n => n.Contains(address));
    }

    /// <summary>
    /// The hosts delivery may try for <paramref name="hop"/>: all of them for a next hop the administrator named, else
    /// those at outside addresses. Empty when every host is internal.
    /// </summary>
    public IReadOnlyList<MailHost> Allowed(NextHop hop, IReadOnlyList<MailHost> hosts)
        => router.IsConfigured(hop) ? hosts : hosts.Where(h => !IsInternal(h.Address)).ToList();
}

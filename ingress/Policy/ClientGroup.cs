using System.Net;
using System.Net.Sockets;

namespace Mta.Ingress.Policy;

/// <summary>
/// What one client is, for every per-client count (connections, connection rate, failed logins): its address cut to a
/// prefix — IPv4 whole by default, IPv6 by its /64, what one subscriber usually holds, so walking through the 2^64
/// addresses of one's own prefix does not reset a limit. IPv4-mapped IPv6 addresses count as IPv4. Postfix's anvil does
/// the same with <c>smtpd_client_ipv4_prefix_length</c> (32) and <c>smtpd_client_ipv6_prefix_length</c> (84 there).
/// </summary>
/// <param name="IPv4Prefix">Bits of an IPv4 address that name the client (1–32).</param>
/// <param name="IPv6Prefix">Bits of an IPv6 address that name the client (1–128).</param>
public sealed record ClientGroup(int IPv4Prefix = 32, int IPv6Prefix = 64)
{
    /// <summary>The defaults: IPv4 addresses whole, IPv6 by /64.</summary>
    public static readonly ClientGroup Default = new();

    /// <summary>The grouping <paramref name="o"/> sets.</summary>
    public static ClientGroup From(IngressOptions o) => new(o.ClientIPv4PrefixLength, o.ClientIPv6PrefixLength);

    /// <summary>The key <paramref name="address"/> is counted under: the network, and its length when it is not the whole address.</summary>
    public string Of(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        var v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        var prefix = v6 ? IPv6Prefix : IPv4Prefix;
        var bytes = address.GetAddressBytes();
        if (prefix >= bytes.Length * 8) return address.ToString();
        for (var bit = prefix; bit < bytes.Length * 8; bit++) bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        return $"{new IPAddress(bytes)}/{prefix}";
    }
}

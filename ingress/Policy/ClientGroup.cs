using System.Net;
using System.Net.Sockets;

namespace Mta.Ingress.Policy;

/// <summary>
/// What one client is, for every per-client count (connections, connection rate, failed logins): an IPv4 address as
/// it is (IPv4-mapped IPv6 too), an IPv6 address by its /64 — what one subscriber usually holds, so walking through
/// the 2^64 addresses of one's own prefix does not reset a limit. Postfix's anvil counts IPv6 addresses apart.
/// </summary>
public static class ClientGroup
{
    /// <summary>The key <paramref name="address"/> is counted under.</summary>
    public static string Of(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address.ToString();
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }
}

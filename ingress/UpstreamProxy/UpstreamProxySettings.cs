using System.Net;
using Mta.Mail.Configuration;

namespace Mta.Ingress.UpstreamProxy;

/// <summary>
/// The PROXY protocol settings as the ingress uses them: which listeners expect the header, from which balancers, and
/// how long to wait for it. Built from <see cref="IngressOptions"/> once the validator has passed them.
/// </summary>
/// <param name="Listeners">The listener names (<c>mx</c>, <c>submission</c>, <c>submissions</c>) that expect the header; empty when off.</param>
/// <param name="Upstreams">The balancers allowed to send it.</param>
/// <param name="Timeout">The wait for it (Postfix <c>smtpd_upstream_proxy_timeout</c>).</param>
public sealed record UpstreamProxySettings(IReadOnlySet<string> Listeners, IReadOnlyList<IPNetwork> Upstreams, TimeSpan Timeout)
{
    /// <summary>The names <see cref="IngressOptions.UpstreamProxyListeners"/> takes.</summary>
    public static readonly string[] ListenerNames = ["mx", "submission", "submissions"];

    /// <summary>The settings <paramref name="o"/> gives (with defaults applied); throws on a value the validator refuses.</summary>
    public static UpstreamProxySettings From(IngressOptions o)
    {
        if (Problems(o).FirstOrDefault() is { } problem) throw new FormatException(problem.Message);
        var on = o.UpstreamProxyProtocol == "haproxy";
        return new UpstreamProxySettings(
            on ? o.UpstreamProxyListeners.ToHashSet(StringComparer.OrdinalIgnoreCase) : new HashSet<string>(),
            o.UpstreamProxyNetworks.Select(n => IPNetwork.Parse(n)).ToArray(),
            TimeSpan.FromSeconds(o.UpstreamProxyTimeoutSeconds));
    }

    /// <summary>Whether connections to the listener named <paramref name="listener"/> start with the header.</summary>
    public bool Expects(string listener) => Listeners.Contains(listener);

    /// <summary>Whether <paramref name="peer"/> is one of the balancers (IPv4-mapped IPv6 taken as IPv4).</summary>
    public bool IsUpstream(IPAddress peer)
    {
        if (peer.IsIPv4MappedToIPv6) peer = peer.MapToIPv4();
        return Upstreams.Any(n => n.Contains(peer));
    }

    /// <summary>What is wrong with the PROXY protocol settings in <paramref name="o"/>: nothing when it is off and untouched.</summary>
    public static IEnumerable<ConfigFinding> Problems(IngressOptions o)
    {
        if (o.UpstreamProxyProtocol is not ("" or "haproxy"))
            yield return ConfigFinding.Error("Ingress:UpstreamProxyProtocol", "smtpd_upstream_proxy_protocol",
                $"'{o.UpstreamProxyProtocol}' is neither empty nor haproxy");
        foreach (var network in o.UpstreamProxyNetworks.Where(n => !IPNetwork.TryParse(n, out _)))
            yield return ConfigFinding.Error("Ingress:UpstreamProxyNetworks", null, $"'{network}' is not CIDR notation");
        foreach (var name in o.UpstreamProxyListeners.Where(n => !ListenerNames.Contains(n, StringComparer.OrdinalIgnoreCase)))
            yield return ConfigFinding.Error("Ingress:UpstreamProxyListeners", null, $"'{name}' is not mx, submission or submissions");
        if (o.UpstreamProxyTimeoutSeconds <= 0)
            yield return ConfigFinding.Error("Ingress:UpstreamProxyTimeoutSeconds", "smtpd_upstream_proxy_timeout",
                $"{o.UpstreamProxyTimeoutSeconds} is not a positive number of seconds");
        // Without the list anyone who reaches the port could name any client, trusted networks included.
        if (o.UpstreamProxyProtocol == "haproxy" && o.UpstreamProxyNetworks.Count == 0)
            yield return ConfigFinding.Error("Ingress:UpstreamProxyNetworks", null,
                "the load balancers' addresses are needed with Ingress:UpstreamProxyProtocol = haproxy, or anyone could claim any client address");
    }
}

using System.Net;
using DnsClient;
using DnsClient.Protocol;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Mail.Delivery;

/// <summary>A host to connect to: its name (for logs and TLS) and one address.</summary>
/// <param name="Name">Host name, or the address literal.</param>
/// <param name="Address">The address to connect to.</param>
public sealed record MailHost(string Name, IPAddress Address);

/// <summary>Why DNS could not give hosts for a destination.</summary>
public sealed class DnsLookupException(string message, bool permanent) : Exception(message)
{
    /// <summary>True when the answer is final (NXDOMAIN, null MX); false for SERVFAIL and timeouts.</summary>
    public bool Permanent { get; } = permanent;
}

/// <summary>
/// Finds the hosts for a domain as RFC 5321 §5.1 says: MX records in preference order,
/// random among equal preference; the domain itself (implicit MX) when there are none;
/// a null MX (RFC 7505) or NXDOMAIN is permanent; other failures are temporary.
/// </summary>
public sealed class MxResolver
{
    private readonly ILookupClient _dns;

    /// <summary>Uses the configured DNS servers, or the system's.</summary>
    public MxResolver(IOptions<MtaOptions> options)
    {
        var servers = options.Value.DnsServers.Select(ParseServer).ToArray();
        var lookup = servers.Length > 0 ? new LookupClientOptions(servers) : new LookupClientOptions();
        lookup.UseCache = true;
        lookup.ThrowDnsErrors = false;
        lookup.ContinueOnDnsError = false;
        lookup.Timeout = TimeSpan.FromSeconds(5);
        lookup.Retries = 2;
        _dns = new LookupClient(lookup);
    }

    /// <summary>The DNS client itself (<c>Mta:DnsServers</c>, answers cached by their TTL), for other lookups: the ingress's DNS lists.</summary>
    public ILookupClient Client => _dns;

    private static NameServer ParseServer(string text)
    {
        if (IPEndPoint.TryParse(text, out var ep))
            return new NameServer(ep.Address, ep.Port == 0 ? 53 : ep.Port);
        throw new FormatException($"Mta:DnsServers: '{text}' is not an address[:port]");
    }

    /// <summary>Hosts for mail to <paramref name="domain"/>, best first.</summary>
    public async Task<IReadOnlyList<MailHost>> ResolveMxAsync(string domain, CancellationToken ct)
    {
        var answer = await QueryAsync(domain, QueryType.MX, ct);
        if (answer.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain)
            throw new DnsLookupException($"Host or domain name not found. Name service error for name={domain} type=MX: Host not found", true);

        var mx = answer.Answers.MxRecords().ToList();
        if (mx.Count == 0)
            return await ResolveHostAsync(domain, ct); // implicit MX

        if (mx.Count == 1 && mx[0].Exchange.Value is "." or "")
            throw new DnsLookupException($"Domain {domain} does not accept mail (null MX)", true);

        var hosts = new List<MailHost>();
        foreach (var group in mx.GroupBy(r => r.Preference).OrderBy(g => g.Key))
            foreach (var record in group.OrderBy(_ => Random.Shared.Next()))
            {
                var name = record.Exchange.Value.TrimEnd('.');
                try { hosts.AddRange(await ResolveHostAsync(name, ct)); }
                catch (DnsLookupException) { /* one bad MX host does not sink the others */ }
            }
        if (hosts.Count == 0)
            throw new DnsLookupException($"No address for any MX host of {domain}", false);
        return hosts;
    }

    /// <summary>Addresses of one host (A, then AAAA).</summary>
    public async Task<IReadOnlyList<MailHost>> ResolveHostAsync(string host, CancellationToken ct)
    {
        if (IPAddress.TryParse(host, out var literal))
            return [new MailHost(host, literal)];
        var a = await QueryAsync(host, QueryType.A, ct);
        if (a.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain)
            throw new DnsLookupException($"Host or domain name not found. Name service error for name={host} type=A: Host not found", true);
        var addresses = a.Answers.ARecords().Select(r => r.Address).ToList();
        var aaaa = await QueryAsync(host, QueryType.AAAA, ct);
        addresses.AddRange(aaaa.Answers.AaaaRecords().Select(r => r.Address));
        if (addresses.Count == 0)
            throw new DnsLookupException($"Host {host} has no address records", false);
        return addresses.Select(ip => new MailHost(host, ip)).ToList();
    }

    /// <summary>The TXT records of a name, each record's strings joined; empty when the name or the records do not exist.</summary>
    public async Task<IReadOnlyList<string>> ResolveTxtAsync(string name, CancellationToken ct)
    {
        var answer = await QueryAsync(name, QueryType.TXT, ct);
        return answer.Answers.TxtRecords().Select(r => string.Concat(r.Text)).ToList();
    }

    private async Task<IDnsQueryResponse> QueryAsync(string name, QueryType type, CancellationToken ct)
    {
        IDnsQueryResponse answer;
        try
        {
            answer = await _dns.QueryAsync(name, type, QueryClass.IN, ct);
        }
        catch (DnsResponseException e)
        {
            throw new DnsLookupException($"Name service error for name={name} type={type}: {e.Message}", false);
        }
        if (answer.HasError && answer.Header.ResponseCode != DnsHeaderResponseCode.NotExistentDomain)
            throw new DnsLookupException($"Name service error for name={name} type={type}: {answer.ErrorMessage}", false);
        return answer;
    }
}

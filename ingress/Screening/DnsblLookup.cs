using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;

namespace Mta.Ingress.Screening;

/// <summary>
/// Asks every list in <c>postscreen_dnsbl_sites</c> about a client at once (each zone once, however many entries name
/// it), as postscreen's dnsblog does, and scores the answers that are in whenever asked: the greeting pause does not
/// wait for a slow list.
/// </summary>
public sealed class DnsblLookup(ILookupClient dns, PostscreenSettings settings)
{
    /// <summary>The lookups for one client, started.</summary>
    public sealed class Queries
    {
        private readonly PostscreenSettings _settings;
        private readonly Dictionary<string, Task<(IReadOnlyList<IPAddress> Replies, TimeSpan Ttl)>> _zones;

        internal Queries(PostscreenSettings settings, Dictionary<string, Task<(IReadOnlyList<IPAddress>, TimeSpan)>> zones)
            => (_settings, _zones) = (settings, zones);

        /// <summary>Completes when every list has answered, failed or timed out.</summary>
        public Task Done => Task.WhenAll(_zones.Values);

        /// <summary>
        /// The combined score of the answers in so far, the list with the largest contribution, and how long the answer
        /// holds (the shortest answer's TTL, within postscreen's minimum and maximum).
        /// </summary>
        public (int Score, string? ListedBy, TimeSpan Ttl) Current()
        {
            var answers = _zones.Where(z => z.Value.IsCompletedSuccessfully).ToDictionary(z => z.Key, z => z.Value.Result);
            var (score, listedBy) = Score(_settings.Sites, answers.ToDictionary(a => a.Key, a => a.Value.Replies));
            var ttl = answers.Count == 0 ? _settings.DnsblMinTtl : answers.Values.Min(a => a.Ttl);
            return (score, listedBy, TimeSpan.FromTicks(Math.Clamp(ttl.Ticks, _settings.DnsblMinTtl.Ticks, _settings.DnsblMaxTtl.Ticks)));
        }
    }

    /// <summary>Starts the lookups for <paramref name="client"/>.</summary>
    public Queries Start(IPAddress client, CancellationToken ct)
    {
        var zones = settings.Sites.Select(s => s.Domain).Distinct(StringComparer.OrdinalIgnoreCase)
            .ToDictionary(zone => zone, zone => AskAsync(ReverseName(client, zone), ct));
        return new Queries(settings, zones);
    }

    /// <summary>
    /// The score of <paramref name="answers"/> (A records per zone; a zone without one did not list the client): each
    /// entry's weight once when one of its zone's records passes its filter; the named list is the largest contribution's.
    /// </summary>
    public static (int Score, string? ListedBy) Score(IReadOnlyList<DnsblSite> sites, IReadOnlyDictionary<string, IReadOnlyList<IPAddress>> answers)
    {
        var score = 0;
        string? listedBy = null;
        var largest = 0;
        foreach (var site in sites)
        {
            if (!answers.TryGetValue(site.Domain, out var replies) || !site.Matches(replies)) continue;
            score += site.Weight;
            if (site.Weight > largest) (largest, listedBy) = (site.Weight, site.Domain);
        }
        return (score, listedBy);
    }

    /// <summary>The name a list is asked under: the address's octets (IPv4) or nibbles (IPv6) reversed, then the zone.</summary>
    public static string ReverseName(IPAddress client, string zone)
    {
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        var bytes = client.GetAddressBytes();
        var labels = client.AddressFamily == AddressFamily.InterNetwork
            ? bytes.Reverse().Select(b => b.ToString())
            : bytes.Reverse().SelectMany(b => new[] { (b & 0xF).ToString("x"), (b >> 4).ToString("x") });
        return string.Join('.', labels) + "." + zone;
    }

    private async Task<(IReadOnlyList<IPAddress>, TimeSpan)> AskAsync(string name, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(settings.DnsblTimeout);
        var response = await dns.QueryAsync(name, QueryType.A, cancellationToken: deadline.Token);
        if (response.HasError)
        {
            // Not listed (NXDOMAIN) holds as long as the zone's negative TTL says; a failure (SERVFAIL) lists no one.
            var negative = response.Authorities.OfType<SoaRecord>().Select(s => TimeSpan.FromSeconds(Math.Min(s.Minimum, s.TimeToLive))).FirstOrDefault();
            return ([], negative);
        }
        var records = response.Answers.ARecords().ToList();
        var ttl = records.Count == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(records.Min(r => r.TimeToLive));
        return (records.Select(r => r.Address).ToList(), ttl);
    }
}

using System.Globalization;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;

namespace Mta.Mail.Shaping;

/// <summary>
/// The limits outbound SMTP keeps towards one destination, summed over every delivery replica
/// (Postfix's <c>default_destination_concurrency_limit</c> and <c>default_destination_recipient_limit</c>,
/// <c>smtp_connection_reuse_count_limit</c>, and a message rate as KumoMTA's <c>max_message_rate</c>).
/// </summary>
/// <param name="Concurrency">Connections open at once to the destination, all replicas together.</param>
/// <param name="MessagesPerConnection">Transactions on one connection before it is closed; 0 for no limit.</param>
/// <param name="MessagesPerSecond">Transactions per second to the destination, all replicas together; 0 for no limit.</param>
/// <param name="RecipientsPerTransaction">Recipients in one transaction; a job with more is sent in several.</param>
/// <param name="Recovery">
/// After a throttling reply halves the destination's concurrency and rate, each period this long gives back a tenth
/// of the configured limits, until they are whole again.
/// </param>
public sealed record DestinationLimits(int Concurrency, int MessagesPerConnection, double MessagesPerSecond, int RecipientsPerTransaction, TimeSpan Recovery)
{
    /// <summary>The built-in defaults, in Postfix's spirit: 20 connections, 50 recipients, no rate, no per-connection limit.</summary>
    public static readonly DestinationLimits Default = new(20, 0, 0, 50, TimeSpan.FromSeconds(60));
}

/// <summary>
/// One destination as traffic shaping counts it: the key its slots and rate are shared under, a readable name, and its limits.
/// Domains whose MX hosts are the same are one site (KumoMTA's "mx rollup"): mail for them shares one set of limits.
/// </summary>
/// <param name="Key">Storage-safe key (hash of <paramref name="Name"/>).</param>
/// <param name="Name">What is shaped: <c>mx:.google.com</c>, or the sorted MX host names of a site, or a bracketed host.</param>
/// <param name="Limits">The limits that apply.</param>
public sealed record ShapingSite(string Key, string Name, DestinationLimits Limits);

/// <summary>
/// The shaping file (mounted from a ConfigMap; <c>Mta:ShapingFile</c>): one destination per line, then its limits as
/// <c>name=value</c> words. The destination is <c>*</c> (every destination not listed), a domain (<c>example.com</c>),
/// every subdomain of one (<c>.example.com</c>), a relay host as written in the transport map (<c>[relay.example.net]</c>;
/// <c>[relay.example.net]:587</c> for that port only, which wins over the line without one), or a mail provider by its
/// MX host names (<c>mx:.google.com</c>: every domain with an MX host under google.com; they share one set of limits).
/// Limits: <c>concurrency=N</c>, <c>messages_per_connection=N</c>, <c>rate=N/s</c> (or <c>/min</c>, <c>/h</c>),
/// <c>recipients=N</c>, <c>recovery=60s</c> (or <c>m</c>). Unset limits come from the <c>*</c> line, then the built-in defaults.
/// </summary>
public sealed class ShapingRules
{
    private readonly DestinationLimits _default;
    private readonly Dictionary<string, DestinationLimits> _destinations;
    private readonly List<(string Suffix, DestinationLimits Limits)> _providers;

    /// <summary>Rules with only the built-in defaults.</summary>
    public static readonly ShapingRules Empty = new(DestinationLimits.Default, new(StringComparer.OrdinalIgnoreCase), []);

    private ShapingRules(DestinationLimits fallback, Dictionary<string, DestinationLimits> destinations, List<(string, DestinationLimits)> providers)
    {
        _default = fallback;
        _destinations = destinations;
        _providers = providers;
    }

    /// <summary>Parses the file's lines; errors name <paramref name="source"/> and the line.</summary>
    public static ShapingRules Parse(IEnumerable<string> lines, string source)
    {
        var entries = new List<(string Destination, Dictionary<string, string> Settings, string Where)>();
        var lineNo = 0;
        foreach (var raw in lines)
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var words = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var where = $"{source}:{lineNo}";
            if (words.Length < 2)
                throw new FormatException($"{where}: expected 'destination name=value ...', got '{line}'");
            var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var word in words.Skip(1))
            {
                var eq = word.IndexOf('=');
                if (eq <= 0 || eq == word.Length - 1)
                    throw new FormatException($"{where}: '{word}' is not name=value");
                settings[word[..eq]] = word[(eq + 1)..];
            }
            entries.Add((words[0].TrimEnd('.'), settings, where));
        }

        var fallback = DestinationLimits.Default;
        foreach (var (_, settings, where) in entries.Where(e => e.Destination == "*"))
            fallback = Apply(fallback, settings, where);
        var destinations = new Dictionary<string, DestinationLimits>(StringComparer.OrdinalIgnoreCase);
        var providers = new List<(string, DestinationLimits)>();
        foreach (var (destination, settings, where) in entries.Where(e => e.Destination != "*"))
        {
            var limits = Apply(fallback, settings, where);
            if (destination.StartsWith("mx:", StringComparison.OrdinalIgnoreCase))
            {
                var suffix = destination[3..].ToLowerInvariant();
                if (suffix.Length == 0) throw new FormatException($"{where}: 'mx:' needs a host name or .suffix");
                providers.Add((suffix, limits));
            }
            else destinations[destination] = limits;
        }
        return new ShapingRules(fallback, destinations, providers);
    }

    private static DestinationLimits Apply(DestinationLimits limits, Dictionary<string, string> settings, string where)
    {
        foreach (var (name, value) in settings)
        {
            limits = name.ToLowerInvariant() switch
            {
                "concurrency" => limits with { Concurrency = Positive(name, value, where) },
                "messages_per_connection" => limits with { MessagesPerConnection = Count(name, value, where) },
                "recipients" => limits with { RecipientsPerTransaction = Positive(name, value, where) },
                "rate" => limits with { MessagesPerSecond = Rate(value, where) },
                "recovery" => limits with { Recovery = Duration(name, value, where) },
                _ => throw new FormatException(
                    $"{where}: unknown limit '{name}' (known: concurrency, messages_per_connection, rate, recipients, recovery)"),
            };
        }
        return limits;
    }

    private static int Count(string name, string value, string where)
        => int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n : throw new FormatException($"{where}: {name}={value} is not a whole number");

    private static int Positive(string name, string value, string where)
        => Count(name, value, where) is var n and > 0 ? n : throw new FormatException($"{where}: {name} must be at least 1");

    /// <summary><c>N/s</c>, <c>N/min</c>, <c>N/h</c> (N may have a fraction), or 0 for no limit; per second.</summary>
    private static double Rate(string value, string where)
    {
        if (value == "0") return 0;
        var slash = value.IndexOf('/');
        if (slash > 0 && double.TryParse(value[..slash], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            var per = value[(slash + 1)..].ToLowerInvariant() switch { "s" => 1.0, "min" or "m" => 60.0, "h" => 3600.0, _ => 0 };
            if (per > 0) return n / per;
        }
        throw new FormatException($"{where}: rate={value} is not N/s, N/min or N/h");
    }

    private static TimeSpan Duration(string name, string value, string where)
    {
        var unit = value.Length > 0 ? value[^1] : ' ';
        var number = char.IsLetter(unit) ? value[..^1] : value;
        if (int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            switch (char.IsLetter(unit) ? unit : 's')
            {
                case 's': return TimeSpan.FromSeconds(n);
                case 'm': return TimeSpan.FromMinutes(n);
                case 'h': return TimeSpan.FromHours(n);
            }
        }
        throw new FormatException($"{where}: {name}={value} is not a duration such as 60s, 5m or 1h");
    }

    /// <summary>
    /// The site a next hop's mail is shaped under, given the hosts it resolved to: a provider line matching one of the MX
    /// hosts wins; otherwise the site is the set of MX host names, with the limits of the domain's line (or the default).
    /// </summary>
    public ShapingSite SiteFor(NextHop hop, IReadOnlyList<MailHost> hosts)
    {
        var names = hosts.Select(h => h.Name.TrimEnd('.').ToLowerInvariant()).Distinct().Order(StringComparer.Ordinal).ToList();
        foreach (var (suffix, limits) in _providers)
            if (names.Any(n => suffix[0] == '.' ? n.EndsWith(suffix, StringComparison.Ordinal) : n == suffix))
                return Site("mx:" + suffix, limits);

        var domain = hop.Host.TrimEnd('.');
        var listed = hop.MxLookup ? Lookup(domain) : LookupRelay(domain, hop.Port);
        var name = hop.MxLookup ? string.Join(',', names) : "[" + domain.ToLowerInvariant() + "]" + (hop.Port is int p ? ":" + p : "");
        return Site(name, listed ?? _default);
    }

    // A relay's line as the transport map writes it, with its port first ("[relay]:587"), then for any port ("[relay]").
    private DestinationLimits? LookupRelay(string host, int? port) =>
        (port is int p ? _destinations.GetValueOrDefault($"[{host}]:{p}") : null)
        ?? _destinations.GetValueOrDefault("[" + host + "]") ?? _destinations.GetValueOrDefault(host);

    private DestinationLimits? Lookup(string domain)
    {
        if (_destinations.TryGetValue(domain, out var exact)) return exact;
        // Parent domains as ".example.com" entries, nearest first.
        for (var dot = domain.IndexOf('.'); dot >= 0; dot = domain.IndexOf('.', dot + 1))
            if (_destinations.TryGetValue(domain[dot..], out var parent)) return parent;
        return null;
    }

    private static ShapingSite Site(string name, DestinationLimits limits)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name));
        return new ShapingSite(Convert.ToHexStringLower(hash.AsSpan(0, 12)), name, limits);
    }
}

using Mta.Mail.Contracts;

namespace Mta.Mail.Routing;

/// <summary>
/// A transport(5)-style table: one <c>domain  transport:nexthop</c> entry per line,
/// <c>#</c> comments and blank lines ignored. Supported right-hand sides:
/// <c>smtp:[host]:port</c> (that host, no MX lookup), <c>smtp:domain[:port]</c> (MX lookup),
/// <c>smtp:</c> (MX of the recipient domain), <c>lmtp:[host]:port</c> or <c>lmtp:host:port</c>
/// (a mailbox server, port 24 by default; never an MX lookup), <c>local:</c>.
/// </summary>
public sealed class TransportMap
{
    private readonly Dictionary<string, NextHop> _entries;

    private TransportMap(Dictionary<string, NextHop> entries) => _entries = entries;

    /// <summary>A map with no entries.</summary>
    public static TransportMap Empty { get; } = new(new(StringComparer.OrdinalIgnoreCase));

    /// <summary>Loads a map file; errors name the file and line.</summary>
    public static TransportMap Load(string path)
    {
        var lines = File.ReadAllLines(path);
        return Parse(lines, path);
    }

    /// <summary>Parses map text; <paramref name="source"/> names it in error messages.</summary>
    public static TransportMap Parse(IEnumerable<string> lines, string source = "transport map")
    {
        var entries = new Dictionary<string, NextHop>(StringComparer.OrdinalIgnoreCase);
        var lineNo = 0;
        foreach (var raw in lines)
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                throw new FormatException($"{source}:{lineNo}: expected 'domain transport:nexthop', got '{line}'");
            var domain = parts[0].TrimEnd('.');
            entries[domain] = ParseNextHop(parts[1].Trim(), domain, $"{source}:{lineNo}");
        }
        return new TransportMap(entries);
    }

    /// <summary>Parses one right-hand side, e.g. <c>smtp:[127.0.0.1]:2526</c>.</summary>
    public static NextHop ParseNextHop(string value, string domain, string where = "next hop")
    {
        var colon = value.IndexOf(':');
        if (colon < 0)
            throw new FormatException($"{where}: '{value}' has no transport (expected e.g. smtp:[host]:port)");
        var transport = value[..colon].ToLowerInvariant();
        var rest = value[(colon + 1)..];
        switch (transport)
        {
            case "local":
                return new NextHop { Transport = Transport.Local };
            case "smtp":
            case "smtps": // smtp with TLS from the first octet (Postfix: a transport with smtp_tls_wrappermode = yes), port 465
            case "relay": // Postfix's relay transport is its smtp client under another name
            case "lmtp":
                break;
            default:
                throw new FormatException($"{where}: unknown transport '{transport}' (known: smtp, smtps, relay, lmtp, local)");
        }

        var lmtp = transport == "lmtp";
        if (rest.Length == 0)
        {
            if (lmtp) throw new FormatException($"{where}: lmtp needs a host, e.g. lmtp:[127.0.0.1]:24");
            return new NextHop { Transport = Transport.Smtp, Host = domain, MxLookup = true };
        }
        var (host, port, mx) = ParseDestination(rest, value, where);
        if (lmtp) // Postfix's lmtp client does no MX lookups; port 24 is lmtp_tcp_port
            return new NextHop { Transport = Transport.Lmtp, Host = host, Port = port ?? 24 };
        if (transport == "smtps") return new NextHop { Transport = Transport.Smtp, Host = host, Port = port ?? 465, MxLookup = mx, ImplicitTls = true };
        return new NextHop { Transport = Transport.Smtp, Host = host, Port = port, MxLookup = mx };
    }

    /// <summary>
    /// A next hop's destination: <c>[host]:port</c> (that host, no MX lookup) or <c>domain:port</c> (MX lookup), the
    /// port optional.
    /// </summary>
    private static (string Host, int? Port, bool Mx) ParseDestination(string rest, string value, string where)
    {
        string host;
        bool mx;
        string portText = "";
        if (rest[0] == '[')
        {
            var close = rest.IndexOf(']');
            if (close < 0) throw new FormatException($"{where}: missing ']' in '{value}'");
            host = rest[1..close];
            mx = false;
            var after = rest[(close + 1)..];
            if (after.Length > 0)
            {
                if (after[0] != ':') throw new FormatException($"{where}: unexpected '{after}' in '{value}'");
                portText = after[1..];
            }
        }
        else
        {
            var pc = rest.LastIndexOf(':');
            host = pc < 0 ? rest : rest[..pc];
            portText = pc < 0 ? "" : rest[(pc + 1)..];
            mx = true;
        }

        if (host.Length == 0) throw new FormatException($"{where}: empty host in '{value}'");
        if (portText.Length == 0) return (host, null, mx);
        if (!int.TryParse(portText, out var port) || port is < 1 or > 65535)
            throw new FormatException($"{where}: bad port '{portText}' in '{value}'");
        return (host, port, mx);
    }

    /// <summary>The entry for a domain, if any.</summary>
    public NextHop? Find(string domain) => _entries.TryGetValue(domain.TrimEnd('.'), out var hop) ? hop : null;

    /// <summary>Whether some entry's next hop is <paramref name="host"/>.</summary>
    public bool Names(string host) => _entries.Values.Any(h => h.Host.Equals(host, StringComparison.OrdinalIgnoreCase));
}

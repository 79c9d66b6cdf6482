using System.Net;

namespace Mta.Ingress.Screening;

/// <summary>
/// One entry of Postfix's <c>postscreen_dnsbl_sites</c>: <c>domain[=filter][*weight]</c>. The filter is an IPv4 address
/// pattern whose octets are numbers or bracketed lists of numbers and ranges (<c>127.0.0.[2..11]</c>,
/// <c>127.0.[0..255].[1;3;5..7]</c>); without one any A record counts. The weight (1 by default) is added to a client's
/// score once however many of the site's records match; a negative weight allowlists.
/// </summary>
/// <param name="Domain">The list's DNS zone (<c>zen.spamhaus.org</c>).</param>
/// <param name="Filter">Per octet, the values a reply may have; null: any reply.</param>
/// <param name="Weight">What a match adds to the score.</param>
/// <param name="Text">The entry as written, for logs.</param>
public sealed record DnsblSite(string Domain, IReadOnlyList<Func<int, bool>>? Filter, int Weight, string Text)
{
    /// <summary>Whether one of <paramref name="replies"/> (the A records of the site's answer) is a listing this entry counts.</summary>
    public bool Matches(IEnumerable<IPAddress> replies) => replies.Any(Matches);

    private bool Matches(IPAddress reply)
    {
        if (reply.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork) return false;
        if (Filter is null) return true;
        var octets = reply.GetAddressBytes();
        for (var i = 0; i < 4; i++)
            if (!Filter[i](octets[i])) return false;
        return true;
    }

    /// <summary>Parses a whole <c>postscreen_dnsbl_sites</c> value (entries separated by commas or white space).</summary>
    public static IReadOnlyList<DnsblSite> ParseList(string? text)
        => (text ?? "").Split([',', ' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(Parse).ToList();

    /// <summary>Parses one entry, or throws <see cref="FormatException"/> saying what is wrong with it.</summary>
    public static DnsblSite Parse(string entry)
    {
        var rest = entry;
        var weight = 1;
        var star = rest.LastIndexOf('*');
        if (star >= 0)
        {
            if (!int.TryParse(rest[(star + 1)..], System.Globalization.NumberStyles.AllowLeadingSign, null, out weight))
                throw new FormatException($"'{entry}': the weight after '*' is not a whole number");
            rest = rest[..star];
        }
        IReadOnlyList<Func<int, bool>>? filter = null;
        var equals = rest.IndexOf('=');
        if (equals >= 0)
        {
            filter = ParseFilter(rest[(equals + 1)..], entry);
            rest = rest[..equals];
        }
        var domain = rest.Trim().TrimEnd('.');
        if (domain.Length == 0 || Uri.CheckHostName(domain) != UriHostNameType.Dns)
            throw new FormatException($"'{entry}': '{domain}' is not a DNS domain");
        return new DnsblSite(domain.ToLowerInvariant(), filter, weight, entry);
    }

    private static IReadOnlyList<Func<int, bool>> ParseFilter(string pattern, string entry)
    {
        var octets = SplitOctets(pattern);
        if (octets.Count != 4) throw new FormatException($"'{entry}': the filter '{pattern}' does not have four octets");
        return octets.Select(o => ParseOctet(o, entry)).ToList();
    }

    // Dots inside brackets belong to ranges ("[2..11]"), not to the address.
    private static List<string> SplitOctets(string pattern)
    {
        var parts = new List<string>();
        var start = 0;
        var depth = 0;
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == '[') depth++;
            else if (pattern[i] == ']') depth--;
            else if (pattern[i] == '.' && depth == 0)
            {
                parts.Add(pattern[start..i]);
                start = i + 1;
            }
        }
        parts.Add(pattern[start..]);
        return parts;
    }

    private static Func<int, bool> ParseOctet(string octet, string entry)
    {
        if (!(octet.StartsWith('[') && octet.EndsWith(']')))
        {
            var value = Number(octet, entry);
            return v => v == value;
        }
        var ranges = octet[1..^1].Split(';').Select(item =>
        {
            var dots = item.IndexOf("..", StringComparison.Ordinal);
            var low = Number(dots < 0 ? item : item[..dots], entry);
            var high = dots < 0 ? low : Number(item[(dots + 2)..], entry);
            if (high < low) throw new FormatException($"'{entry}': the range '{item}' runs backwards");
            return (low, high);
        }).ToArray();
        return v => ranges.Any(r => v >= r.low && v <= r.high);
    }

    private static int Number(string text, string entry)
        => text.Length is > 0 and <= 3 && text.All(char.IsAsciiDigit) && int.Parse(text) <= 255
            ? int.Parse(text) : throw new FormatException($"'{entry}': '{text}' is not an octet value (0–255)");
}

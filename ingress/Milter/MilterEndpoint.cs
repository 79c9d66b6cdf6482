using System.Text.RegularExpressions;

namespace Mta.Ingress.Milter;

/// <summary>What a milter's failure (down, slow, garbage) does to the event it was asked about (Postfix's <c>milter_default_action</c>).</summary>
public enum MilterDefaultAction
{
    /// <summary>Answer 4xx: the client tries again later (Postfix's default).</summary>
    Tempfail,
    /// <summary>Go on as if the milter were not configured.</summary>
    Accept,
    /// <summary>Answer 5xx.</summary>
    Reject,
    /// <summary>Accept the message onto the hold queue.</summary>
    Quarantine,
}

/// <summary>
/// One entry of <c>Ingress:Milters</c> (Postfix's <c>smtpd_milters</c>): where the milter listens and the settings it
/// has of its own, from the <c>{ inet:host:port, default_action = accept, command_timeout = 10s }</c> form or the globals.
/// </summary>
/// <param name="Name">The entry as written (<c>inet:host:port</c> or <c>unix:/path</c>): the milter's name in logs and metrics.</param>
/// <param name="Host">Host for <c>inet:</c>; null for <c>unix:</c>.</param>
/// <param name="Port">Port for <c>inet:</c>.</param>
/// <param name="Path">Socket path for <c>unix:</c>.</param>
/// <param name="DefaultAction">What a failure of this milter does.</param>
/// <param name="ConnectTimeout">Postfix <c>milter_connect_timeout</c>.</param>
/// <param name="CommandTimeout">Postfix <c>milter_command_timeout</c>: each envelope event's reply.</param>
/// <param name="ContentTimeout">Postfix <c>milter_content_timeout</c>: each header, body chunk and end-of-message reply.</param>
/// <param name="Protocol">The protocol version offered (2, 3, 4 or 6).</param>
public sealed record MilterEndpoint(string Name, string? Host, int Port, string? Path, MilterDefaultAction DefaultAction,
    TimeSpan ConnectTimeout, TimeSpan CommandTimeout, TimeSpan ContentTimeout, uint Protocol)
{
    /// <summary>
    /// Parses a milter list in Postfix's syntax: entries separated by commas or white space, each <c>inet:host:port</c>,
    /// <c>inet:[v6addr]:port</c>, <c>unix:/path</c>, or such an address in braces with per-milter settings
    /// (<c>default_action</c>, <c>connect_timeout</c>, <c>command_timeout</c>, <c>content_timeout</c>, <c>protocol</c>).
    /// Throws <see cref="FormatException"/> naming what is wrong.
    /// </summary>
    public static IReadOnlyList<MilterEndpoint> ParseList(string? list, MilterEndpoint defaults)
    {
        var result = new List<MilterEndpoint>();
        foreach (var entry in Entries(list ?? ""))
        {
            var parts = entry.StartsWith('{') ? entry.Trim('{', '}').Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) : [entry];
            if (parts.Length == 0) throw new FormatException("an empty { } entry");
            var milter = Address(parts[0], defaults);
            foreach (var setting in parts.Skip(1)) milter = milter.With(setting);
            result.Add(milter);
        }
        return result;
    }

    /// <summary>The settings every entry starts from (the globals).</summary>
    public static MilterEndpoint Defaults(MilterDefaultAction action, TimeSpan connect, TimeSpan command, TimeSpan content, uint protocol)
        => new("", null, 0, null, action, connect, command, content, protocol);

    private static IEnumerable<string> Entries(string list)
    {
        // Braced groups first (they hold commas), then the plain words between them.
        foreach (Match m in Regex.Matches(list, @"\{[^{}]*\}|[^\s,{}]+"))
            yield return m.Value;
        if (list.Count(c => c == '{') != list.Count(c => c == '}')) throw new FormatException("unbalanced { } in the milter list");
    }

    private static MilterEndpoint Address(string address, MilterEndpoint defaults)
    {
        if (address.StartsWith("unix:", StringComparison.Ordinal) && address.Length > 5)
            return defaults with { Name = address, Path = address[5..] };
        var m = Regex.Match(address, @"^inet:(?:\[(?<host>[^\]]+)\]|(?<host>[^:\[\]]+)):(?<port>\d{1,5})$");
        if (!m.Success || !int.TryParse(m.Groups["port"].Value, out var port) || port is < 1 or > 65535)
            throw new FormatException($"'{address}' is neither inet:host:port nor unix:/path");
        return defaults with { Name = address, Host = m.Groups["host"].Value, Port = port };
    }

    private MilterEndpoint With(string setting)
    {
        var eq = setting.IndexOf('=');
        if (eq < 0) throw new FormatException($"'{setting}' in {Name} is not name = value");
        var (name, value) = (setting[..eq].Trim(), setting[(eq + 1)..].Trim());
        return name switch
        {
            "default_action" => this with { DefaultAction = ParseAction(value) },
            "connect_timeout" => this with { ConnectTimeout = ParseTime(value) },
            "command_timeout" => this with { CommandTimeout = ParseTime(value) },
            "content_timeout" => this with { ContentTimeout = ParseTime(value) },
            "protocol" => this with { Protocol = uint.TryParse(value, out var p) && p is 2 or 3 or 4 or 6 ? p : throw new FormatException($"protocol {value} in {Name}: 2, 3, 4 or 6") },
            _ => throw new FormatException($"unknown setting '{name}' in {Name} (known: default_action, connect_timeout, command_timeout, content_timeout, protocol)"),
        };
    }

    /// <summary><c>tempfail</c>, <c>accept</c>, <c>reject</c> or <c>quarantine</c>.</summary>
    public static MilterDefaultAction ParseAction(string value) => value.ToLowerInvariant() switch
    {
        "tempfail" => MilterDefaultAction.Tempfail,
        "accept" => MilterDefaultAction.Accept,
        "reject" => MilterDefaultAction.Reject,
        "quarantine" => MilterDefaultAction.Quarantine,
        _ => throw new FormatException($"default_action '{value}': tempfail, accept, reject or quarantine"),
    };

    /// <summary>A Postfix time value: a number with an optional unit (<c>s</c>, <c>m</c>, <c>h</c>; seconds without one).</summary>
    public static TimeSpan ParseTime(string value)
    {
        var m = Regex.Match(value, @"^(\d{1,6})([smh]?)$");
        if (!m.Success) throw new FormatException($"'{value}' is not a time (30s, 5m, 1h)");
        var n = int.Parse(m.Groups[1].Value);
        var time = m.Groups[2].Value switch { "m" => TimeSpan.FromMinutes(n), "h" => TimeSpan.FromHours(n), _ => TimeSpan.FromSeconds(n) };
        return time > TimeSpan.Zero ? time : throw new FormatException($"'{value}': a time must be more than 0");
    }
}

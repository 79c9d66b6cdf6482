namespace Mta.Mail.Delivery.Tls;

/// <summary>What an MTA-STS policy asks of senders (RFC 8461 §5).</summary>
public enum MtaStsMode
{
    /// <summary>No policy applies.</summary>
    None,

    /// <summary>Failures are reported, but delivery goes on as without a policy.</summary>
    Testing,

    /// <summary>Only the listed MX hosts, only over TLS with a valid certificate naming the host.</summary>
    Enforce,
}

/// <summary>A domain's MTA-STS policy (RFC 8461 §3.2), as fetched from <c>https://mta-sts.DOMAIN/.well-known/mta-sts.txt</c>.</summary>
/// <param name="Id">The id of the <c>_mta-sts</c> TXT record it was fetched for.</param>
/// <param name="Mode">enforce, testing or none.</param>
/// <param name="Mx">MX host patterns: <c>mail.example.com</c> or <c>*.example.com</c> (one leftmost label).</param>
/// <param name="MaxAge">How long the policy may be cached.</param>
public sealed record MtaStsPolicy(string Id, MtaStsMode Mode, IReadOnlyList<string> Mx, TimeSpan MaxAge)
{
    /// <summary>RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year).</summary>
    public const long LongestMaxAge = 31_557_600;

    /// <summary>RFC 8461 §3.3: policy bodies are at most 64 KiB.</summary>
    public const int LargestBody = 64 * 1024;

    /// <summary>Parses a policy body; throws <see cref="FormatException"/> when it is not a valid STSv1 policy.</summary>
    public static MtaStsPolicy Parse(string id, string body)
    {
        string? version = null, mode = null, maxAge = null;
        var mx = new List<string>();
        foreach (var raw in body.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            var colon = line.IndexOf(':');
            if (colon <= 0) throw new FormatException($"MTA-STS policy line without a key: '{line}'");
            var key = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "version": version ??= value; break;
                case "mode": mode ??= value; break;
                case "max_age": maxAge ??= value; break;
                case "mx": mx.Add(value.TrimEnd('.').ToLowerInvariant()); break;
                default: break; // unknown fields are ignored (§3.2)
            }
        }
        if (version != "STSv1") throw new FormatException($"MTA-STS policy version '{version}' is not STSv1");
        var parsedMode = mode switch
        {
            "enforce" => MtaStsMode.Enforce,
            "testing" => MtaStsMode.Testing,
            "none" => MtaStsMode.None,
            _ => throw new FormatException($"MTA-STS policy mode '{mode}' is not enforce, testing or none"),
        };
        if (!long.TryParse(maxAge, out var seconds) || seconds < 0 || seconds > LongestMaxAge)
            throw new FormatException($"MTA-STS policy max_age '{maxAge}' is not 0..{LongestMaxAge}");
        if (parsedMode != MtaStsMode.None && mx.Count == 0)
            throw new FormatException("MTA-STS policy lists no mx");
        return new MtaStsPolicy(id, parsedMode, mx, TimeSpan.FromSeconds(seconds));
    }

    /// <summary>Whether an MX host name matches one of the policy's patterns (§4.1).</summary>
    public bool Allows(string mxHost)
    {
        var host = mxHost.TrimEnd('.').ToLowerInvariant();
        foreach (var pattern in Mx)
        {
            if (pattern.StartsWith("*.", StringComparison.Ordinal))
            {
                var dot = host.IndexOf('.');
                if (dot > 0 && host[(dot + 1)..] == pattern[2..]) return true;
            }
            else if (host == pattern)
            {
                return true;
            }
        }
        return false;
    }
}

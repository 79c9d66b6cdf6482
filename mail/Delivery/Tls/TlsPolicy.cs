using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;

namespace Mta.Mail.Delivery.Tls;

/// <summary>How much TLS outbound SMTP insists on (Postfix <c>smtp_tls_security_level</c>).</summary>
public enum TlsLevel
{
    /// <summary>Plain text, even when the server offers STARTTLS.</summary>
    None,

    /// <summary>Opportunistic: STARTTLS when offered, any certificate; plain text otherwise.</summary>
    May,

    /// <summary>STARTTLS required, any certificate (protects against passive eavesdropping only).</summary>
    Encrypt,

    /// <summary>STARTTLS required and the certificate must chain to a trusted root and name the host connected to.</summary>
    Verify,
}

/// <summary>
/// The TLS level for each destination (Postfix <c>smtp_tls_policy_maps</c>): a file of
/// <c>destination level</c> lines, where destination is a recipient domain (<c>example.com</c>),
/// every subdomain of one (<c>.example.com</c>) or a bracketed next hop (<c>[relay.example.net]:587</c>);
/// anything not listed gets <see cref="MtaOptions.TlsSecurityLevel"/>.
/// </summary>
public sealed class TlsPolicy
{
    private readonly Dictionary<string, TlsLevel> _entries;

    /// <summary>The level for destinations not listed.</summary>
    public TlsLevel Default { get; }

    private TlsPolicy(TlsLevel fallback, Dictionary<string, TlsLevel> entries)
    {
        Default = fallback;
        _entries = entries;
    }

    /// <summary>Loads the policy from the options (and the policy file, when one is set).</summary>
    public TlsPolicy(IOptions<MtaOptions> options)
        : this(ParseLevel(options.Value.TlsSecurityLevel, "Mta:TlsSecurityLevel"),
               string.IsNullOrEmpty(options.Value.TlsPolicyFile) ? [] : Parse(File.ReadAllLines(options.Value.TlsPolicyFile), options.Value.TlsPolicyFile))
    {
    }

    /// <summary>A policy from lines of text; errors name <paramref name="source"/> and the line.</summary>
    public static TlsPolicy FromLines(IEnumerable<string> lines, string source, TlsLevel fallback = TlsLevel.May)
        => new(fallback, Parse(lines, source));

    private static Dictionary<string, TlsLevel> Parse(IEnumerable<string> lines, string source)
    {
        var entries = new Dictionary<string, TlsLevel>(StringComparer.OrdinalIgnoreCase);
        var lineNo = 0;
        foreach (var raw in lines)
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var parts = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                throw new FormatException($"{source}:{lineNo}: expected 'destination level', got '{line}'");
            entries[parts[0].TrimEnd('.')] = ParseLevel(parts[1], $"{source}:{lineNo}");
        }
        return entries;
    }

    /// <summary>Parses <c>none</c>, <c>may</c>, <c>encrypt</c> or <c>verify</c>.</summary>
    public static TlsLevel ParseLevel(string text, string where) => text.ToLowerInvariant() switch
    {
        "none" => TlsLevel.None,
        "may" => TlsLevel.May,
        "encrypt" => TlsLevel.Encrypt,
        "verify" or "secure" => TlsLevel.Verify,
        _ => throw new FormatException($"{where}: unknown TLS level '{text}' (known: none, may, encrypt, verify)"),
    };

    /// <summary>The level listed for a next hop, or null when the file says nothing about it.</summary>
    public TlsLevel? Find(NextHop hop)
    {
        if (!hop.MxLookup)
        {
            var key = "[" + hop.Host + "]" + (hop.Port is int p ? ":" + p : "");
            if (_entries.TryGetValue(key, out var bracketed)) return bracketed;
        }
        if (_entries.TryGetValue(hop.Host, out var exact)) return exact;
        for (var dot = hop.Host.IndexOf('.'); dot >= 0; dot = hop.Host.IndexOf('.', dot + 1))
            if (_entries.TryGetValue(hop.Host[dot..], out var parent)) return parent;
        return null;
    }
}

using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Mta.Mail.Configuration;
using Mta.Mail.Routing;

namespace Mta.Ingress.Injection;

/// <summary>Who a bearer token speaks for: its tenant, and the sender domains it may inject mail from.</summary>
/// <param name="Tenant">The tenant's name (the message's tag, the login in its envelope).</param>
/// <param name="Domains">Envelope sender domains the token may use.</param>
public sealed record InjectionClient(string Tenant, IReadOnlySet<string> Domains)
{
    /// <summary>Whether <paramref name="sender"/> is one of the token's domains (the rule of submission's sender login map).</summary>
    public bool MaySendAs(string sender) => Domains.Contains(Address.DomainOf(sender));
}

/// <summary>
/// The injection API's bearer tokens (<c>Ingress:InjectionTokensFile</c>), read again when the mounted
/// Secret changes. A line is <c>tenant sha256:HEX domain[,domain…]</c>: only the token's SHA-256 is in the file, so a
/// leaked file does not leak a token (tokens are random, so an unsalted fast hash is enough).
/// </summary>
public sealed class InjectionTokens
{
    private readonly WatchedFile<Dictionary<string, InjectionClient>>? _tokens;

    /// <summary>Reads the file; a malformed line fails at start with its line number.</summary>
    public InjectionTokens(string? file, ILogger log)
    {
        if (string.IsNullOrEmpty(file)) return;
        _tokens = new(file, Parse,
            error => log.LogWarning("injection tokens file {File} not reloaded, keeping the previous one: {Error}", file, error),
            tokens => log.LogInformation("injection tokens reloaded from {File}: {Count} tokens", file, tokens.Count));
    }

    /// <summary>Who <paramref name="token"/> belongs to, or null.</summary>
    public InjectionClient? Find(string token)
        => _tokens?.Value.GetValueOrDefault(Hash(token));

    /// <summary>The file's form of a token: <c>sha256:</c> and its SHA-256 in lower-case hex.</summary>
    public static string Hash(string token) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>Parses the file's lines (<c>#</c> comments and blank lines skipped).</summary>
    public static Dictionary<string, InjectionClient> Parse(string[] lines, string path)
    {
        var tokens = new Dictionary<string, InjectionClient>(StringComparer.Ordinal);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != 3 || !fields[1].StartsWith("sha256:", StringComparison.Ordinal) || fields[1].Length != 7 + 64)
                throw new FormatException($"{path}:{i + 1}: expected 'tenant sha256:HEX domain[,domain...]'");
            var domains = fields[2].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Address.NormalizeDomain)
                .ToHashSet(StringComparer.OrdinalIgnoreCase);
            tokens[fields[1].ToLowerInvariant()] = new InjectionClient(fields[0], domains);
        }
        return tokens;
    }
}

using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using MimeKit.Cryptography;
using Mta.Mail.Configuration;
using Org.BouncyCastle.Crypto;

namespace Mta.Mail.Dkim;

/// <summary>
/// DKIM signing (RFC 6376) of mail from trusted clients, with MimeKit's <see cref="DkimSigner"/>: the signing table
/// (<c>Mta:DkimSigningTable</c>, like OpenDKIM's) names, per sender domain, the selector and the PEM key file, which
/// is mounted from a Secret and read again when the table changes. Canonicalization is relaxed/relaxed; the domain is
/// the From header's, so the signature aligns for DMARC.
/// </summary>
public sealed class DkimSigning
{
    /// <summary>Header fields signed when present (RFC 6376 §5.4.1's recommended set).</summary>
    public static readonly string[] SignedHeaders =
    [
        "From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
    ];

    private readonly WatchedFile<Dictionary<string, KeyFile>>? _table;
    private readonly ILogger<DkimSigning> _log;
    // MimeKit's signer parses its PEM key with BouncyCastle (about 17 ms): one signer per signing domain, kept.
    private readonly ConcurrentDictionary<(string Domain, KeyFile Key), DomainKey> _signers = new();

    private object? _signersOf;

    private sealed record KeyFile(string Selector, RSA Rsa, string Pem);

    /// <summary>Loads the signing table and its keys (a bad table or key stops the start, naming file and line).</summary>
    public DkimSigning(IOptions<MtaOptions> options, ILogger<DkimSigning> log)
    {
        _log = log;
        var path = options.Value.DkimSigningTable;
        if (!string.IsNullOrEmpty(path))
            _table = new WatchedFile<Dictionary<string, KeyFile>>(path, Parse,
                e => log.LogWarning("warning: DKIM signing table changed but could not be read, the previous version stays in use: {Error}", e));
    }

    /// <summary>True when a signing table is configured.</summary>
    public bool Configured => _table is not null;

    /// <summary>The key for a sender domain (exact, then parent domains as <c>.example.org</c> entries), or null.</summary>
    public DomainKey? KeyFor(string domain)
    {
        if (_table is null || domain.Length == 0) return null;
        var table = _table.Value;
        if (!ReferenceEquals(Interlocked.Exchange(ref _signersOf, table), table)) _signers.Clear(); // the table was read again
        if (!table.TryGetValue(domain, out var key))
        {
            for (var dot = domain.IndexOf('.'); key is null && dot >= 0; dot = domain.IndexOf('.', dot + 1))
                table.TryGetValue(domain[dot..], out key);
            if (key is null) return null;
        }
        return _signers.GetOrAdd((domain, key), k => new DomainKey(k.Domain, k.Key.Selector)
        {
            Signer = new NativeRsaDkimSigner(k.Domain, k.Key)
            {
                HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
                BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            },
        });
    }

    /// <summary>
    /// Signs <paramref name="message"/> (a seekable stream holding the whole message exactly as it will be sent)
    /// and returns the DKIM-Signature header to put on top; the message's bytes are not changed.
    /// </summary>
    public Header Sign(DomainKey key, Stream message, CancellationToken ct = default)
    {
        var parsed = MimeMessage.Load(Cleanup.UntrustedMime.Options, message, persistent: true, ct);
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        var present = SignedHeaders.Where(h => parsed.Headers.Contains(h)).ToArray();
        key.Signer.Sign(format, parsed, present);
        return parsed.Headers[parsed.Headers.IndexOf(HeaderId.DkimSignature)];
    }

    private Dictionary<string, KeyFile> Parse(string[] lines, string source)
    {
        var table = new Dictionary<string, KeyFile>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < lines.Length; i++)
        {
            var where = $"{source}:{i + 1}";
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 3)
                throw new FormatException($"{where}: expected 'domain selector keyfile', got '{line}'");
            var keyPath = Path.IsPathRooted(parts[2]) ? parts[2] : Path.Combine(Path.GetDirectoryName(source) ?? "", parts[2]);
            string pem;
            try { pem = File.ReadAllText(keyPath); }
            catch (IOException e) { throw new FormatException($"{where}: cannot read key {keyPath}: {e.Message}"); }
            var rsa = RSA.Create();
            try { rsa.ImportFromPem(pem); }
            catch (ArgumentException e) { throw new FormatException($"{where}: {keyPath} is not a PEM RSA private key: {e.Message}"); }
            if (rsa.KeySize < 1024)
                throw new FormatException($"{where}: {keyPath} is a {rsa.KeySize}-bit key; RFC 8301 requires at least 1024 bits");
            table[parts[0].TrimEnd('.')] = new KeyFile(parts[1], rsa, pem);
        }
        _log.LogInformation("DKIM signing table {Source}: {Count} domains", source, table.Count);
        return table;
    }

    /// <summary>MimeKit's signer with the signature computed by .NET's RSA (see <see cref="RsaSigningContext"/>).</summary>
    private sealed class NativeRsaDkimSigner(string domain, KeyFile key)
        : DkimSigner(new MemoryStream(System.Text.Encoding.ASCII.GetBytes(key.Pem)), domain, key.Selector, DkimSignatureAlgorithm.RsaSha256)
    {
        protected override ISigner CreateSigningContext() => new RsaSigningContext(key.Rsa);
    }
}

/// <summary>One signing domain: its selector, and the signer holding its private key.</summary>
/// <param name="Domain">The <c>d=</c> domain.</param>
/// <param name="Selector">The <c>s=</c> selector (the key's DNS name is <c>selector._domainkey.domain</c>).</param>
public sealed record DomainKey(string Domain, string Selector)
{
    internal DkimSigner Signer { get; init; } = null!;
}

using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Routing;

namespace Mta.Mail.Delivery.Sasl;

/// <summary>
/// Postfix's <c>smtp_sasl_password_maps</c>: <c>key user:password</c> lines, from a file mounted from a Kubernetes Secret
/// and read again when it changes. The key is a next hop as the transport map or relay host names it
/// (<c>[smtp.example.com]:587</c>, <c>[smtp.example.com]</c>, or a domain looked up by MX), or with
/// <c>smtp_sender_dependent_authentication</c> a sender address or <c>@domain</c>. Errors name the file and line,
/// never the line's text: it holds a password.
/// </summary>
public sealed class SaslPasswordMap
{
    private readonly WatchedFile<Dictionary<string, SaslAccount>>? _file;
    private readonly bool _bySender;
    private readonly Action<string>? _failed;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, WatchedFile<string>> _tokens = new();

    /// <summary>A password written so is a file to read it from (an OAuth bearer token a sidecar renews): <c>user:file:/path</c>.</summary>
    public const string FilePrefix = "file:";

    private SaslPasswordMap(WatchedFile<Dictionary<string, SaslAccount>>? file, bool bySender, Action<string>? failed = null)
        => (_file, _bySender, _failed) = (file, bySender, failed);

    /// <summary>A map without entries: no next hop gets a login.</summary>
    public static SaslPasswordMap Empty { get; } = new(null, false);

    /// <summary>Loads the map named by the options; an unset path gives <see cref="Empty"/>.</summary>
    public static SaslPasswordMap Load(MtaOptions options, Action<string>? reloadFailed = null)
        => string.IsNullOrEmpty(options.SmtpSaslPasswordMapsFile) ? Empty
            : new(new WatchedFile<Dictionary<string, SaslAccount>>(options.SmtpSaslPasswordMapsFile, Parse, reloadFailed),
                options.SmtpSenderDependentAuthentication, reloadFailed);

    /// <summary>True when a map is configured.</summary>
    public bool Configured => _file is not null;

    /// <summary>
    /// The login for mail from <paramref name="sender"/> to <paramref name="hop"/>, in Postfix's order: the sender, then
    /// its <c>@domain</c> (only with sender-dependent authentication), then the next hop with its port, then without.
    /// </summary>
    public SaslAccount? Find(NextHop hop, string sender)
    {
        if (_file?.Value is not { } map) return null;
        foreach (var key in Keys(hop, sender, _bySender))
            if (map.TryGetValue(key, out var account)) return account with { Key = key, Password = Secret(account.Password) };
        return null;
    }

    /// <summary>
    /// The password, or for <c>file:/path</c> the file's content (trimmed), read again when the file changes. An
    /// unreadable file gives an empty password (the login then fails and the mail waits), and a warning.
    /// </summary>
    private string Secret(string password)
    {
        if (!password.StartsWith(FilePrefix, StringComparison.Ordinal)) return password;
        var path = password[FilePrefix.Length..];
        try
        {
            return _tokens.GetOrAdd(path, p => new WatchedFile<string>(p, (lines, _) => string.Concat(lines).Trim(), _failed)).Value;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _failed?.Invoke($"cannot read the token file {path}: {e.Message}");
            return "";
        }
    }

    /// <summary>The lookup keys, most specific first.</summary>
    public static IEnumerable<string> Keys(NextHop hop, string sender, bool bySender)
    {
        if (bySender && sender.Length > 0)
        {
            yield return sender;
            yield return "@" + Address.DomainOf(sender);
        }
        var host = hop.MxLookup ? hop.Host : "[" + hop.Host + "]";
        if (hop.Port is int port) yield return host + ":" + port;
        yield return host;
    }

    /// <summary>Parses the file; an error names <paramref name="source"/> and the line number only.</summary>
    public static Dictionary<string, SaslAccount> Parse(string[] lines, string source)
    {
        var map = new Dictionary<string, SaslAccount>(AsciiCaseComparer.Instance);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries);
            var colon = parts.Length == 2 ? parts[1].IndexOf(':') : -1;
            if (colon <= 0) throw new FormatException($"{source}:{i + 1}: expected 'next-hop user:password' (the line is not shown: it may hold a password)");
            if (!map.TryAdd(parts[0], new SaslAccount(parts[1][..colon].Trim(), parts[1][(colon + 1)..].Trim())))
                throw new FormatException($"{source}:{i + 1}: a second entry for {parts[0]}");
        }
        return map;
    }
}

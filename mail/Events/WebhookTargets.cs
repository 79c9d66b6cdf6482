using Mta.Mail.Configuration;

namespace Mta.Mail.Events;

/// <summary>A webhook endpoint: where a tenant's events go, and the secret that signs them.</summary>
/// <param name="Url">The endpoint (https, or http on loopback).</param>
/// <param name="Secret">The HMAC key, from its own file.</param>
public sealed record WebhookTarget(Uri Url, byte[] Secret);

/// <summary>
/// The webhooks file (<see cref="MtaOptions.WebhooksFile"/>): <c>tenant url secret-file</c> per line, <c>*</c> for events
/// of no tenant or of a tenant without a line of its own, <c>#</c> comments. Secrets are read from their own files
/// (a mounted Secret), never from this one. Read again when it changes.
/// </summary>
public sealed class WebhookTargets
{
    private readonly WatchedFile<IReadOnlyDictionary<string, WebhookTarget>>? _file;

    private WebhookTargets(WatchedFile<IReadOnlyDictionary<string, WebhookTarget>>? file) => _file = file;

    /// <summary>No webhooks.</summary>
    public static WebhookTargets None { get; } = new(null);

    /// <summary>Loads the file (null or empty: <see cref="None"/>).</summary>
    public static WebhookTargets Load(string? path, Action<string>? reloadFailed = null)
        => string.IsNullOrEmpty(path) ? None : new(new WatchedFile<IReadOnlyDictionary<string, WebhookTarget>>(path, Parse, reloadFailed));

    /// <summary>Where <paramref name="tenant"/>'s events go, or null when nowhere.</summary>
    public WebhookTarget? For(string? tenant)
    {
        var targets = _file?.Value;
        if (targets is null) return null;
        return tenant is not null && targets.TryGetValue(tenant, out var own) ? own : targets.GetValueOrDefault("*");
    }

    private static IReadOnlyDictionary<string, WebhookTarget> Parse(string[] lines, string source)
    {
        var targets = new Dictionary<string, WebhookTarget>(StringComparer.Ordinal);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var where = $"{source}:{i + 1}";
            if (line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) is not [var tenant, var url, var secretFile])
                throw new FormatException($"{where}: expected 'tenant url secret-file'");
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || !(uri.Scheme == "https" || uri.Scheme == "http" && uri.IsLoopback))
                throw new FormatException($"{where}: '{url}' is not an https URL (http only to a loopback address)");
            var secret = File.Exists(secretFile) ? File.ReadAllBytes(secretFile).AsSpan().TrimEnd("\r\n"u8).ToArray() : [];
            if (secret.Length < 16) throw new FormatException($"{where}: the secret file '{secretFile}' is missing or holds fewer than 16 octets");
            if (!targets.TryAdd(tenant, new WebhookTarget(uri, secret))) throw new FormatException($"{where}: tenant '{tenant}' again");
        }
        return targets;
    }
}

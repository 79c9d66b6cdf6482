using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Mail.Delivery.Tls;

/// <summary>
/// Finds and caches the MTA-STS policies of recipient domains (RFC 8461): the <c>_mta-sts</c> TXT record
/// says a policy exists and its id; the policy comes over HTTPS from <c>mta-sts.DOMAIN</c> with a certificate
/// that must verify, without redirects, and is cached for its max_age per worker. A changed id fetches
/// it again; a failed fetch keeps a cached policy; no policy at all means plain opportunistic delivery.
/// </summary>
public sealed class MtaStsPolicies : IDisposable
{
    private readonly MxResolver _dns;
    private readonly MtaOptions _options;
    private readonly TimeProvider _clock;
    private readonly ILogger<MtaStsPolicies> _log;
    private readonly HttpClient _http;
    private readonly ConcurrentDictionary<string, (MtaStsPolicy Policy, DateTimeOffset Expires)> _cache = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Builds the fetcher: host names resolve through the MTA's own DNS servers, certificates through <paramref name="certificates"/>.</summary>
    public MtaStsPolicies(MxResolver dns, ServerCertificateCheck certificates, DeliveryTargets targets, IOptions<MtaOptions> options,
        TimeProvider clock, ILogger<MtaStsPolicies> log)
    {
        _dns = dns;
        _options = options.Value;
        _clock = clock;
        _log = log;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // §3.3: redirects are not followed
            UseProxy = false,
            ConnectTimeout = TimeSpan.FromSeconds(_options.SmtpTimeoutSeconds),
            ConnectCallback = async (context, ct) =>
            {
                // The policy host is named by the recipient domain's owner: never an internal address.
                var hosts = (await _dns.ResolveHostAsync(context.DnsEndPoint.Host, ct)).Where(h => !targets.IsInternal(h.Address)).ToList();
                if (hosts.Count == 0) throw new HttpRequestException($"{context.DnsEndPoint.Host} is at internal addresses only");
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(hosts.Select(h => h.Address).ToArray(), context.DnsEndPoint.Port, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        // §3.3: the policy host's certificate must verify for mta-sts.DOMAIN (the TLS target host name).
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, cert, chain, errors) =>
            sender is System.Net.Security.SslStream tls && certificates.IsTrusted(cert, chain, errors, tls.TargetHostName, out _);
        // FetchAsync puts one deadline on the whole fetch, body included; HttpClient's own ends with the headers.
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>The policy in force for <paramref name="domain"/>, or null when it publishes none (or MTA-STS is off).</summary>
    public async Task<MtaStsPolicy?> GetAsync(string domain, CancellationToken ct)
    {
        if (!_options.MtaSts) return null;
        var now = _clock.GetUtcNow();
        _cache.TryGetValue(domain, out var cached);
        var cachedValid = cached.Policy is not null && cached.Expires > now;

        string? id;
        try
        {
            id = await RecordIdAsync(domain, ct);
        }
        catch (DnsLookupException e)
        {
            // §5.1: a DNS failure with a cached policy keeps the cached policy.
            _log.LogInformation("MTA-STS: TXT lookup for {Domain} failed: {Error}", domain, e.Message);
            return cachedValid ? cached.Policy : null;
        }
        if (id is null) return cachedValid ? cached.Policy : null;
        if (cachedValid && cached.Policy!.Id == id) return cached.Policy;

        try
        {
            var policy = await FetchAsync(domain, id, ct);
            _cache[domain] = (policy, now + policy.MaxAge);
            _log.LogInformation("MTA-STS: policy for {Domain}: id={Id}, mode={Mode}, mx={Mx}, max_age={MaxAge}",
                domain, id, policy.Mode.ToString().ToLowerInvariant(), string.Join(",", policy.Mx), (long)policy.MaxAge.TotalSeconds);
            return policy;
        }
        catch (Exception e) when (e is HttpRequestException or FormatException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            _log.LogWarning("MTA-STS: cannot fetch the policy of {Domain}: {Error}", domain, e.Message);
            return cachedValid ? cached.Policy : null;
        }
    }

    /// <summary>The id of the domain's <c>v=STSv1</c> TXT record; null when there is none, or more than one (§3.1).</summary>
    private async Task<string?> RecordIdAsync(string domain, CancellationToken ct)
    {
        var records = (await _dns.ResolveTxtAsync("_mta-sts." + domain, ct))
            .Where(t => t.StartsWith("v=STSv1", StringComparison.Ordinal)).ToList();
        if (records.Count != 1) return null;
        foreach (var field in records[0].Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            if (field.StartsWith("id=", StringComparison.Ordinal) && field.Length is > 3 and <= 35 && field[3..].All(char.IsAsciiLetterOrDigit))
                return field[3..];
        return null;
    }

    /// <summary>The whole fetch — connection, TLS, headers and body — must be over within this.</summary>
    private TimeSpan FetchDeadline => TimeSpan.FromSeconds(Math.Max(5, _options.SmtpTimeoutSeconds));

    private async Task<MtaStsPolicy> FetchAsync(string domain, string id, CancellationToken outer)
    {
        // One deadline for all of it: a server that sends its headers and then one byte a second holds no worker.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(outer);
        deadline.CancelAfter(FetchDeadline);
        var ct = deadline.Token;
        try { return await FetchWithinAsync(domain, id, ct); }
        catch (OperationCanceledException) when (!outer.IsCancellationRequested)
        {
            throw new HttpRequestException($"mta-sts.{domain}: no whole policy within {FetchDeadline.TotalSeconds} s");
        }
    }

    private async Task<MtaStsPolicy> FetchWithinAsync(string domain, string id, CancellationToken ct)
    {
        var host = "mta-sts." + domain;
        var port = _options.MtaStsPort == 443 ? "" : ":" + _options.MtaStsPort;
        using var response = await _http.GetAsync($"https://{host}{port}/.well-known/mta-sts.txt", HttpCompletionOption.ResponseHeadersRead, ct);
        if ((int)response.StatusCode != 200)
            throw new HttpRequestException($"{host} answered HTTP {(int)response.StatusCode}");
        if (response.Content.Headers.ContentType is not MediaTypeHeaderValue { MediaType: "text/plain" })
            throw new FormatException($"{host} sent the policy as {response.Content.Headers.ContentType?.MediaType ?? "no type"}, not text/plain");
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[MtaStsPolicy.LargestBody + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await body.ReadAsync(buffer.AsMemory(length), ct)) > 0) length += read;
        if (length > MtaStsPolicy.LargestBody) throw new FormatException($"{host} sent a policy over 64 KiB");
        return MtaStsPolicy.Parse(id, Encoding.UTF8.GetString(buffer, 0, length));
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();
}

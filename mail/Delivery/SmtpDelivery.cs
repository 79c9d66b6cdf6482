using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery.Tls;

namespace Mta.Mail.Delivery;

/// <summary>
/// Postfix's smtp client role: sends one message to one next hop over SMTP (<see cref="SmtpConnection"/>),
/// using the envelope (never the headers) for MAIL FROM and RCPT TO, and the stored bytes unchanged.
/// Tries each host in turn until one takes the transaction, with the TLS the destination's policy asks
/// for (the TLS policy file, else its MTA-STS policy, else opportunistic), and reuses connections
/// within the worker for the next job to the same destination.
/// </summary>
public sealed class SmtpDelivery : IDisposable
{
    private readonly MxResolver _resolver;
    private readonly TlsPolicy _tlsPolicy;
    private readonly MtaStsPolicies _mtaSts;
    private readonly ServerCertificateCheck _certificates;
    private readonly SmtpConnectionCache _cache;
    private readonly TimeProvider _clock;
    private readonly MtaOptions _options;
    private readonly ILogger<SmtpDelivery> _log;

    /// <summary>Builds the client role from its collaborators.</summary>
    public SmtpDelivery(MxResolver resolver, TlsPolicy tlsPolicy, MtaStsPolicies mtaSts, ServerCertificateCheck certificates,
        TimeProvider clock, IOptions<MtaOptions> options, ILogger<SmtpDelivery> log)
    {
        _resolver = resolver;
        _tlsPolicy = tlsPolicy;
        _mtaSts = mtaSts;
        _certificates = certificates;
        _clock = clock;
        _options = options.Value;
        _log = log;
        _cache = new SmtpConnectionCache(options, clock);
    }

    /// <summary>Delivers <paramref name="message"/> (the exact bytes to send) to every recipient of <paramref name="job"/>.</summary>
    public async Task<IReadOnlyList<RecipientResult>> DeliverAsync(DeliveryJob job, ReadOnlyMemory<byte> message, AttemptTimes times, CancellationToken ct)
    {
        var hop = job.NextHop;
        var port = hop.Port ?? _options.SmtpPort;
        // An entry in the TLS policy file is the administrator's word and wins over MTA-STS.
        var listed = _tlsPolicy.Find(hop);
        var sts = listed is null && hop.MxLookup ? await _mtaSts.GetAsync(hop.Host, ct) : null;
        var enforce = sts?.Mode == MtaStsMode.Enforce;
        var level = listed ?? (enforce ? TlsLevel.Verify : _tlsPolicy.Default);
        var destination = $"{hop}|{level}";

        if (_cache.Take(destination) is { } cached)
        {
            if (await cached.StillUsableAsync(ct))
            {
                times.Connected();
                times.ConnectionUse = cached.Uses + 1;
                return await TransactAsync(destination, cached, job, message, ct);
            }
            await cached.DisposeAsync();
        }

        IReadOnlyList<MailHost> hosts;
        try
        {
            hosts = hop.MxLookup ? await _resolver.ResolveMxAsync(hop.Host, ct) : await _resolver.ResolveHostAsync(hop.Host, ct);
        }
        catch (DnsLookupException e)
        {
            var status = e.Permanent ? RecipientStatus.Bounced : RecipientStatus.Deferred;
            var code = e.Permanent ? (e.Message.Contains("null MX") ? "5.1.10" : "5.1.2") : "4.4.3";
            return All(job, status, $"{code} {e.Message}", "none");
        }
        if (enforce)
        {
            // RFC 8461 §4.1: only MX hosts the policy names; none left is a temporary failure.
            hosts = hosts.Where(h => sts!.Allows(h.Name)).ToList();
            if (hosts.Count == 0)
                return All(job, RecipientStatus.Deferred, $"4.7.5 MTA-STS policy of {hop.Host} allows none of its MX hosts", "none");
        }

        var lastError = "4.4.1 no host could be reached";
        var lastRelay = "none";
        foreach (var host in hosts)
        {
            var relay = $"{host.Name}[{host.Address}]:{port}";
            var (connection, error) = await ConnectAsync(job, host, port, relay, level, sts, ct);
            if (connection is null)
            {
                lastError = error;
                lastRelay = relay;
                continue;
            }
            times.Connected();
            return await TransactAsync(destination, connection, job, message, ct);
        }
        return All(job, RecipientStatus.Deferred, lastError, lastRelay);
    }

    private async Task<IReadOnlyList<RecipientResult>> TransactAsync(string destination, SmtpConnection connection, DeliveryJob job, ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        IReadOnlyList<RecipientResult> results;
        var utf8 = connection.Offers("SMTPUTF8");
        if (job.SmtpUtf8 && !utf8 && Internationalized.Needs(job, message.Span))
        {
            // RFC 6531 §3.2: such a message cannot be downgraded here; Postfix bounces it with 5.6.7.
            results = All(job, RecipientStatus.Bounced, $"5.6.7 SMTPUTF8 is required, but was not offered by host {connection.Relay}", connection.Relay);
        }
        else
        {
            results = await connection.SendAsync(job, message, job.SmtpUtf8 && utf8, ct);
        }
        _cache.Return(destination, connection);
        return results;
    }

    /// <summary>Connects, reads the greeting, says EHLO and starts TLS as <paramref name="level"/> demands; null and a reason on failure.</summary>
    private async Task<(SmtpConnection? Connection, string Error)> ConnectAsync(
        DeliveryJob job, MailHost host, int port, string relay, TlsLevel level, MtaStsPolicy? sts, CancellationToken ct)
    {
        var timeout = TimeSpan.FromSeconds(_options.SmtpTimeoutSeconds);
        SmtpConnection connection;
        try
        {
            connection = await SmtpConnection.OpenAsync(host, port, lmtp: false, _options.MyHostname, timeout, _clock.GetUtcNow(), ct);
        }
        catch (SmtpConnectException e)
        {
            // Connection refused, 4xx/5xx greeting: try the next host (RFC 5321 §5.1).
            _log.LogInformation("{QueueId}: connect to {Relay}: {Error}", job.MessageId, relay, e.Message);
            return (null, $"4.4.1 connect to {relay}: {e.Message}");
        }

        var certificateProblem = "";
        var verified = false;
        if (level != TlsLevel.None && connection.Offers("STARTTLS"))
        {
            try
            {
                // The MX host name (not the address) goes to TLS: SNI and the certificate check use it.
                await connection.StartTlsAsync(host.Name, (_, cert, chain, errors) =>
                {
                    verified = _certificates.IsTrusted(cert, chain, errors, host.Name, out certificateProblem);
                    // Below verify, any certificate encrypts (Postfix may/encrypt); the check is still logged.
                    return verified || level < TlsLevel.Verify;
                }, ct);
            }
            catch (Exception e) when (e is SmtpConnectException or System.Security.Authentication.AuthenticationException or IOException
                                          or OperationCanceledException && !ct.IsCancellationRequested)
            {
                await connection.DisposeAsync();
                if (level == TlsLevel.May)
                {
                    // Opportunistic TLS that fails its handshake falls back to plain text, as Postfix does.
                    _log.LogInformation("{QueueId}: TLS handshake with {Relay} failed ({Error}); trying again in plain text", job.MessageId, relay, e.Message);
                    return await ConnectAsync(job, host, port, relay, TlsLevel.None, sts, ct);
                }
                var error = level == TlsLevel.Verify && certificateProblem.Length > 0
                    ? $"4.7.5 Server certificate not verified: {relay}: {certificateProblem}"
                    : $"4.7.5 TLS handshake with {relay} failed: {e.Message}";
                _log.LogInformation("{QueueId}: {Error}", job.MessageId, error);
                return (null, error);
            }
            _log.LogInformation("{Trust} TLS connection established to {Relay}: {Tls}", verified ? "Verified" : "Untrusted", relay, connection.Tls);
        }
        else if (level >= TlsLevel.Encrypt)
        {
            await connection.QuitAsync();
            var error = $"4.7.4 TLS is required, but was not offered by host {relay}";
            _log.LogInformation("{QueueId}: {Error}", job.MessageId, error);
            return (null, error);
        }

        if (sts?.Mode == MtaStsMode.Testing && !(connection.Tls is not null && verified && sts.Allows(host.Name)))
        {
            // RFC 8461 §5: in testing mode a failure is reported, and delivery goes on.
            _log.LogWarning("MTA-STS (testing) for {Domain}: {Relay} would fail the policy: {Reason}", job.NextHop.Host, relay,
                !sts.Allows(host.Name) ? "MX host not in the policy" : connection.Tls is null ? "no TLS" : certificateProblem);
        }
        return (connection, "");
    }

    private static List<RecipientResult> All(DeliveryJob job, RecipientStatus status, string detail, string relay)
        => job.Recipients.Select(r => new RecipientResult(r, status, detail, relay)).ToList();

    /// <inheritdoc/>
    public void Dispose() => _cache.Dispose();
}

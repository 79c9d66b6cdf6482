using System.Net.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery.Tls;
using Mta.Mail.Shaping;

namespace Mta.Mail.Delivery;

/// <summary>
/// Postfix's smtp client role: sends one message to one next hop over SMTP (<see cref="OutboundSmtpConnection"/>),
/// using the envelope (never the headers) for MAIL FROM and RCPT TO, and the stored bytes unchanged.
/// Tries each host in turn until one takes the transaction, with the TLS the destination's policy asks
/// for (the TLS policy file, else its MTA-STS policy, else opportunistic), and reuses connections
/// within the worker for the next job to the same destination.
/// </summary>
public sealed partial class SmtpDelivery : IDisposable
{
    private readonly MxResolver _resolver;
    private readonly TlsPolicy _tlsPolicy;
    private readonly MtaStsPolicies _mtaSts;
    private readonly ServerCertificateCheck _certificates;
    private readonly OutboundConnectionCache _cache;
    private readonly TimeProvider _clock;
    private readonly TrafficShaper _shaper;
    private readonly MtaOptions _options;
    private readonly DeliveryTargets _targets;
    private readonly ILogger<SmtpDelivery> _log;
    private readonly Sasl.SaslPasswordMap _passwords;

    /// <summary>Builds the client role from its collaborators.</summary>
    public SmtpDelivery(MxResolver resolver, TlsPolicy tlsPolicy, MtaStsPolicies mtaSts, ServerCertificateCheck certificates,
        TrafficShaper shaper, DeliveryTargets targets, TimeProvider clock, IOptions<MtaOptions> options, ILogger<SmtpDelivery> log,
        Sasl.SaslPasswordMap passwords)
    {
        _passwords = passwords;
        _targets = targets;
        _resolver = resolver;
        _tlsPolicy = tlsPolicy;
        _mtaSts = mtaSts;
        _certificates = certificates;
        _clock = clock;
        _shaper = shaper;
        _options = options.Value;
        _log = log;
        _cache = new OutboundConnectionCache(options, clock, c => c.Shaping is not { } s || shaper.MayKeep(s.Site, s.Slot, c.Uses));
    }

    /// <summary>
    /// Delivers the message (<paramref name="message"/> gives the exact bytes to send; it is only read once a connection is
    /// ready) to every recipient of <paramref name="job"/>. Recipients the destination's shaping limits did not let through
    /// come back with <see cref="RecipientResult.PostponedFor"/> set.
    /// </summary>
    public async Task<IReadOnlyList<RecipientResult>> DeliverAsync(DeliveryJob job, Func<CancellationToken, Task<ReadOnlyMemory<byte>>> message,
        AttemptTimes times, CancellationToken ct)
    {
        var tls = await TlsForAsync(job.NextHop, ct);
        var account = _passwords.Find(job.NextHop, job.Sender);
        // Two accounts at one provider are two destinations: connections are reused only by the account that logged in.
        var destination = $"{job.NextHop}|{tls.Level}" + (account is null ? "" : "|" + account.User);
        // A cached connection holds its slot already.
        if (await TakeCachedAsync(destination, ct) is { } cached)
        {
            times.Connected();
            times.ConnectionUse = cached.Uses + 1;
            return await TransactAsync(destination, cached, job, message, ct);
        }

        var (hosts, failed) = await HostsAsync(job, tls.Sts, tls.Enforce, ct);
        if (failed is not null) return failed;
        var site = ForAccount(_shaper.SiteFor(job.NextHop, hosts), account);
        var (reused, slot) = await SlotAsync(destination, site, ct);
        if (reused is not null)
        {
            times.Connected();
            times.ConnectionUse = reused.Uses + 1;
            return await TransactAsync(destination, reused, job, message, ct);
        }
        if (slot is null)
            return Postponed(job.Recipients, $"4.4.5 {site.Name}: all {_shaper.Concurrency(site)} connections in use", TimeSpan.Zero);
        try
        {
            var (connection, error, relay, permanent) = await ConnectAnyAsync(job, hosts, site, tls, account, ct);
            if (connection is null)
            {
                await slot.DisposeAsync();
                return All(job, permanent ? RecipientStatus.Bounced : RecipientStatus.Deferred, error, relay);
            }
            connection.Shaping = (site, slot);
            times.Connected();
            return await TransactAsync(destination, connection, job, message, ct);
        }
        catch (Exception)
        {
            // Never keep a slot nobody uses: it would be renewed for ever. (Released once; the connection may have done it.)
            await slot.DisposeAsync();
            throw;
        }
    }

    /// <summary>The TLS a next hop gets, and its MTA-STS policy when that decided it.</summary>
    private sealed record TlsChoice(TlsLevel Level, MtaStsPolicy? Sts)
    {
        /// <summary>An MTA-STS policy in enforce mode: only the MX hosts it names, verified.</summary>
        public bool Enforce => Sts?.Mode == MtaStsMode.Enforce;
    }

    /// <summary>An entry in the TLS policy file is the administrator's word and wins over MTA-STS; else opportunistic.</summary>
    private async Task<TlsChoice> TlsForAsync(NextHop hop, CancellationToken ct)
    {
        var listed = _tlsPolicy.Find(hop);
        var sts = listed is null && hop.MxLookup ? await _mtaSts.GetAsync(hop.Host, ct) : null;
        return new TlsChoice(listed ?? (sts?.Mode == MtaStsMode.Enforce ? TlsLevel.Verify : _tlsPolicy.Default), sts);
    }

    /// <summary>
    /// The hosts to try for the job's next hop, in order; or, when there are none to try, every recipient's result: DNS
    /// failures, hosts only at internal addresses, or none of them allowed by an enforced MTA-STS policy.
    /// </summary>
    private async Task<(IReadOnlyList<MailHost> Hosts, List<RecipientResult>? Failed)> HostsAsync(DeliveryJob job, MtaStsPolicy? sts, bool enforce,
        CancellationToken ct)
    {
        var hop = job.NextHop;
        IReadOnlyList<MailHost> resolved;
        try
        {
            resolved = hop.MxLookup ? await _resolver.ResolveMxAsync(hop.Host, ct) : await _resolver.ResolveHostAsync(hop.Host, ct);
        }
        catch (DnsLookupException e)
        {
            var status = e.Permanent ? RecipientStatus.Bounced : RecipientStatus.Deferred;
            var code = e.Permanent ? (e.Message.Contains("null MX") ? "5.1.10" : "5.1.2") : "4.4.3";
            return ([], All(job, status, $"{code} {e.Message}", "none"));
        }
        var hosts = _targets.Allowed(hop, resolved);
        if (hosts.Count == 0)
        {
            // An MX record that points into loopback, private or cluster networks: a way in for whoever controls the DNS.
            _log.LogWarning("{QueueId}: {Host}: mail hosts only at internal addresses ({Addresses}); refused", job.MessageId, hop.Host,
                string.Join(", ", resolved.Select(h => h.Address)));
            return ([], All(job, RecipientStatus.Bounced, $"5.4.4 {hop.Host}: its mail hosts are at internal addresses, which are not delivered to", "none"));
        }
        if (!enforce) return (hosts, null);
        // RFC 8461 §4.1: only MX hosts the policy names; none left is a temporary failure.
        hosts = hosts.Where(h => sts!.Allows(h.Name)).ToList();
        return hosts.Count > 0 ? (hosts, null) : ([], All(job, RecipientStatus.Deferred, $"4.7.5 MTA-STS policy of {hop.Host} allows none of its MX hosts", "none"));
    }

    /// <summary>
    /// Tries each host in turn until one takes a connection (RFC 5321 §5.1); a host that says 421 slows the site down.
    /// Without a connection: the last host's error and relay.
    /// </summary>
    private async Task<(OutboundSmtpConnection? Connection, string Error, string Relay, bool Permanent)> ConnectAnyAsync(DeliveryJob job,
        IReadOnlyList<MailHost> hosts, ShapingSite site, TlsChoice tls, Sasl.SaslAccount? account, CancellationToken ct)
    {
        var port = job.NextHop.Port ?? _options.SmtpPort;
        var (lastError, lastRelay) = ("4.4.1 no host could be reached", "none");
        foreach (var host in hosts)
        {
            var relay = $"{host.Name}[{host.Address}]:{port}";
            var (connection, error, code) = await ConnectAsync(job, host, port, relay, tls.Level, tls.Sts, ct);
            if (connection is { } opened && account is not null)
                (connection, error, code) = await LoginAsync(job, opened, account, relay, ct);
            if (connection is not null) return (connection, "", relay, false);
            (lastError, lastRelay) = (error, relay);
            // A refused login is the account's, not the host's: the other hosts would refuse it too.
            if (code == LoginRefused) return (null, error, relay, true);
            if (code == 421) await _shaper.ThrottledAsync(site, relay, error[(error.IndexOf(": ", StringComparison.Ordinal) + 2)..], ct);
        }
        return (null, lastError, lastRelay, false);
    }

    /// <summary>An idle connection to <paramref name="destination"/> that still answers, or null.</summary>
    private async Task<OutboundSmtpConnection?> TakeCachedAsync(string destination, CancellationToken ct)
    {
        while (_cache.Take(destination) is { } cached)
        {
            if (await cached.StillUsableAsync(ct)) return cached;
            await cached.DisposeAsync();
        }
        return null;
    }

    /// <summary>
    /// A connection slot for <paramref name="site"/>: a new lease, or a connection of this replica that came free while the
    /// job waited. It waits only while this replica holds slots there and one of them came free within the last
    /// <see cref="TrafficShaper.LocalWait"/> (the queue ahead is moving); otherwise the destination is busy. Bounded by the
    /// worker's own batch: a slow destination stops the waiting, a fast one serves the jobs waiting here.
    /// </summary>
    private async Task<(OutboundSmtpConnection? Reused, SlotLease? Slot)> SlotAsync(string destination, ShapingSite site, CancellationToken ct)
    {
        while (true)
        {
            var freed = _shaper.Freed(site);
            if (await _shaper.TryAcquireSlotAsync(site, ct) is { } slot) return (null, slot);
            if (!_shaper.HoldsSlots(site)) return (null, null);
            if (await Task.WhenAny(freed, Task.Delay(_shaper.LocalWait, _clock, ct)) != freed) return (null, null);
            ct.ThrowIfCancellationRequested();
            if (await TakeCachedAsync(destination, ct) is { } cached) return (cached, null);
        }
    }

    /// <summary>
    /// The job's transactions on <paramref name="connection"/>: its recipients in groups of the destination's
    /// recipients per transaction, each group taking its turn in the destination's rate right before its MAIL command
    /// (after any connection setup, so setup time does not bunch transactions up). What the connection's limits or the
    /// rate did not let through is postponed, never failed; an unused new connection waits in the cache for the next job.
    /// </summary>
    private async Task<IReadOnlyList<RecipientResult>> TransactAsync(string destination, OutboundSmtpConnection connection, DeliveryJob job,
        Func<CancellationToken, Task<ReadOnlyMemory<byte>>> load, CancellationToken ct)
    {
        // Every connection gets its site and slot when it is opened (DeliverAsync), before its first transaction.
        var (site, slot) = connection.Shaping ?? throw new InvalidOperationException($"connection to {connection.Relay} has no shaping slot");
        var results = new List<RecipientResult>();
        var groups = job.Recipients.Chunk(site.Limits.RecipientsPerTransaction).ToList();
        ReadOnlyMemory<byte> message;
        try
        {
            message = await load(ct);
        }
        catch (Exception)
        {
            _cache.Return(destination, connection);
            throw;
        }
        for (var i = 0; i < groups.Count; i++)
        {
            var group = groups[i];
            if (i > 0 && (connection.Broken || !_shaper.MayKeep(site, slot, connection.Uses)))
            {
                results.AddRange(Postponed(groups.Skip(i).SelectMany(g => g), $"4.4.5 {site.Name}: messages per connection reached", TimeSpan.Zero));
                break;
            }
            var pace = await _shaper.PaceAsync(site, 1, ct);
            if (!pace.Granted)
            {
                results.AddRange(Postponed(groups.Skip(i).SelectMany(g => g), $"4.4.5 {site.Name}: message rate reached", pace.Wait));
                break;
            }
            await Task.Delay(pace.Wait, _clock, ct);
            var part = job with { Recipients = group };
            var utf8 = connection.Offers("SMTPUTF8");
            if (job.SmtpUtf8 && !utf8 && Internationalized.Needs(part, message.Span))
            {
                // RFC 6531 §3.2: such a message cannot be downgraded here; Postfix bounces it with 5.6.7.
                results.AddRange(All(part, RecipientStatus.Bounced, $"5.6.7 SMTPUTF8 is required, but was not offered by host {connection.Relay}", connection.Relay));
                continue;
            }
            IReadOnlyList<RecipientResult> sent;
            try
            {
                sent = await connection.SendAsync(part, message, job.SmtpUtf8 && utf8, ct);
            }
            catch (Exception)
            {
                await connection.DisposeAsync(); // cancelled mid-transaction: the connection (and its slot) go
                throw;
            }
            results.AddRange(sent);
            if (sent.FirstOrDefault(r => r.Status == RecipientStatus.Deferred && _shaper.IsThrottling(r.Detail)) is { } throttled)
                await _shaper.ThrottledAsync(site, connection.Relay, throttled.Detail, ct);
        }
        _cache.Return(destination, connection);
        _shaper.Pulse(site);
        return results;
    }

    private static List<RecipientResult> Postponed(IEnumerable<string> recipients, string reason, TimeSpan wait)
        => recipients.Select(r => new RecipientResult(r, RecipientStatus.Deferred, reason, "none") { PostponedFor = wait }).ToList();

    /// <summary>Connects, reads the greeting, says EHLO and starts TLS as <paramref name="level"/> demands; null and a reason on failure.</summary>
    private async Task<(OutboundSmtpConnection? Connection, string Error, int Code)> ConnectAsync(
        DeliveryJob job, MailHost host, int port, string relay, TlsLevel level, MtaStsPolicy? sts, CancellationToken ct)
    {
        var timeout = TimeSpan.FromSeconds(_options.SmtpTimeoutSeconds);
        OutboundSmtpConnection connection;
        var (verified, problem) = (false, "");
        RemoteCertificateValidationCallback check = (_, cert, chain, errors) =>
        {
            verified = _certificates.IsTrusted(cert, chain, errors, host.Name, out problem);
            return verified || level < TlsLevel.Verify; // below verify any certificate encrypts; the check is still logged
        };
        try
        {
            connection = await OutboundSmtpConnection.OpenAsync(host, port, lmtp: false, _options.MyHostname, timeout, _clock.GetUtcNow(), ct,
                job.NextHop.ImplicitTls ? (host.Name, check) : null);
        }
        catch (SmtpConnectException e)
        {
            // Connection refused, 4xx/5xx greeting: try the next host (RFC 5321 §5.1).
            _log.LogInformation("{QueueId}: connect to {Relay}: {Error}", job.MessageId, relay, e.Message);
            return (null, $"4.4.1 connect to {relay}: {e.Message}", e.Code);
        }

        if (job.NextHop.ImplicitTls)
            _log.LogInformation("{Trust} TLS connection established to {Relay}: {Tls}", verified ? "Verified" : "Untrusted", relay, connection.Tls);
        var tls = job.NextHop.ImplicitTls ? new TlsOutcome(verified, problem) : await SecureAsync(job, connection, host, relay, level, ct);
        if (tls.PlainAgain) return await ConnectAsync(job, host, port, relay, TlsLevel.None, sts, ct);
        if (tls.Error is not null) return (null, tls.Error, 0);
        if (sts?.Mode == MtaStsMode.Testing && !(connection.Tls is not null && tls.Verified && sts.Allows(host.Name)))
        {
            // RFC 8461 §5: in testing mode a failure is reported, and delivery goes on.
            _log.LogWarning("MTA-STS (testing) for {Domain}: {Relay} would fail the policy: {Reason}", job.NextHop.Host, relay,
                !sts.Allows(host.Name) ? "MX host not in the policy" : connection.Tls is null ? "no TLS" : tls.CertificateProblem);
        }
        return (connection, "", 0);
    }

    /// <summary>What came of TLS on a new connection.</summary>
    /// <param name="Verified">The server's certificate passed the check.</param>
    /// <param name="CertificateProblem">Why it did not, if it did not.</param>
    /// <param name="Error">Why the connection cannot be used (it is closed then); null when it can.</param>
    /// <param name="PlainAgain">Opportunistic TLS failed its handshake: connect again in plain text, as Postfix does.</param>
    private sealed record TlsOutcome(bool Verified, string CertificateProblem, string? Error = null, bool PlainAgain = false);

    /// <summary>STARTTLS as <paramref name="level"/> demands, checking the certificate against the MX host name.</summary>
    private async Task<TlsOutcome> SecureAsync(DeliveryJob job, OutboundSmtpConnection connection, MailHost host, string relay, TlsLevel level,
        CancellationToken ct)
    {
        if (level == TlsLevel.None || !connection.Offers("STARTTLS"))
        {
            if (level < TlsLevel.Encrypt) return new TlsOutcome(false, "");
            await connection.QuitAsync();
            var required = $"4.7.4 TLS is required, but was not offered by host {relay}";
            _log.LogInformation("{QueueId}: {Error}", job.MessageId, required);
            return new TlsOutcome(false, "", required);
        }
        var certificateProblem = "";
        var verified = false;
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
                _log.LogInformation("{QueueId}: TLS handshake with {Relay} failed ({Error}); trying again in plain text", job.MessageId, relay, e.Message);
                return new TlsOutcome(false, certificateProblem, PlainAgain: true);
            }
            var error = level == TlsLevel.Verify && certificateProblem.Length > 0
                ? $"4.7.5 Server certificate not verified: {relay}: {certificateProblem}"
                : $"4.7.5 TLS handshake with {relay} failed: {e.Message}";
            _log.LogInformation("{QueueId}: {Error}", job.MessageId, error);
            return new TlsOutcome(false, certificateProblem, error);
        }
        _log.LogInformation("{Trust} TLS connection established to {Relay}: {Tls}", verified ? "Verified" : "Untrusted", relay, connection.Tls);
        return new TlsOutcome(verified, certificateProblem);
    }

    private static List<RecipientResult> All(DeliveryJob job, RecipientStatus status, string detail, string relay)
        => job.Recipients.Select(r => new RecipientResult(r, status, detail, relay)).ToList();

    /// <inheritdoc/>
    public void Dispose() => _cache.Dispose();
}

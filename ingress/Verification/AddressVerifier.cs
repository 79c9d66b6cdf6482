using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Routing;

namespace Mta.Ingress.Verification;

/// <summary>What a probe learnt of an address.</summary>
public enum Verdict
{
    /// <summary>The next hop took the recipient (2xx).</summary>
    Deliverable,

    /// <summary>The next hop refused it for good (5xx), or its domain does not exist.</summary>
    Undeliverable,

    /// <summary>No answer either way yet: the next hop could not be reached, answered 4xx, or the probe is still running.</summary>
    Unknown,
}

/// <summary>A verdict with the reason: the next hop's reply or what kept the probe from one.</summary>
public sealed record VerifyResult(Verdict Verdict, string Detail);

/// <summary>
/// Postfix's verify(8) for <c>reject_unverified_recipient</c>: asks the recipient's next hop — the LMTP mailbox server or
/// the SMTP host a relay domain is routed to — whether it would take the address (<c>MAIL FROM</c>, <c>RCPT TO</c>,
/// <c>RSET</c>, no message), and remembers the answer (<see cref="ProbeCache"/>). One probe per address at a time; a
/// session waits for it at most <see cref="IngressOptions.VerifyWaitSeconds"/>, and a probe that takes longer still
/// finishes and fills the cache for the client's retry, as Postfix's "verification in progress" does.
/// </summary>
public sealed class AddressVerifier
{
    private readonly Router _router;
    private readonly MxResolver _resolver;
    private readonly DeliveryTargets _targets;
    private readonly MtaOptions _mta;
    private readonly IngressOptions _options;
    private readonly TimeProvider _clock;
    private readonly ILogger<AddressVerifier> _log;
    private readonly ProbeCache _cache;
    private readonly ConcurrentDictionary<string, Lazy<Task<VerifyResult>>> _running = new(Mta.Mail.Routing.AsciiCaseComparer.Instance);

    /// <summary>Builds the verifier from the routing it shares with delivery.</summary>
    public AddressVerifier(Router router, MxResolver resolver, DeliveryTargets targets, IOptions<MtaOptions> mta,
        IOptions<IngressOptions> options, TimeProvider clock, ILogger<AddressVerifier> log)
    {
        (_router, _resolver, _targets, _mta, _options, _clock, _log) = (router, resolver, targets, mta.Value, options.Value, clock, log);
        _cache = new ProbeCache(clock, TimeSpan.FromSeconds(_options.VerifyPositiveSeconds), TimeSpan.FromSeconds(_options.VerifyNegativeSeconds));
    }

    /// <summary>Whether <paramref name="recipient"/> has a next hop to ask: LMTP or SMTP, not the local Maildir store.</summary>
    public bool CanProbe(string recipient) => _router.Resolve(recipient).Transport != Transport.Local;

    /// <summary>The verdict for <paramref name="recipient"/>: remembered, or asked of its next hop within the wait.</summary>
    public async Task<VerifyResult> VerifyAsync(string recipient, CancellationToken ct)
    {
        if (_cache.Find(recipient) is { } known) return known;
        var probe = _running.GetOrAdd(recipient, r => new Lazy<Task<VerifyResult>>(() => ProbeAndRememberAsync(r))).Value;
        var wait = Task.Delay(TimeSpan.FromSeconds(_options.VerifyWaitSeconds), _clock, ct);
        return await Task.WhenAny(probe, wait) == probe ? await probe : new VerifyResult(Verdict.Unknown, "Address verification in progress");
    }

    private async Task<VerifyResult> ProbeAndRememberAsync(string recipient)
    {
        try
        {
            // Not the session's token: a probe outlives a client that gave up, so its answer is there for the retry.
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(_mta.SmtpTimeoutSeconds * 3));
            var result = await ProbeAsync(recipient, limit.Token);
            _cache.Remember(recipient, result);
            _log.LogInformation("verify: <{Recipient}>: {Verdict} ({Detail})", recipient, result.Verdict, result.Detail);
            return result;
        }
        finally
        {
            _running.TryRemove(recipient, out _);
        }
    }

    private async Task<VerifyResult> ProbeAsync(string recipient, CancellationToken ct)
    {
        var hop = _router.Resolve(recipient);
        IReadOnlyList<MailHost> hosts;
        try
        {
            hosts = hop.MxLookup ? await _resolver.ResolveMxAsync(hop.Host, ct) : await _resolver.ResolveHostAsync(hop.Host, ct);
        }
        catch (DnsLookupException e)
        {
            return new VerifyResult(e.Permanent ? Verdict.Undeliverable : Verdict.Unknown, e.Message);
        }
        catch (OperationCanceledException)
        {
            return new VerifyResult(Verdict.Unknown, $"{hop.Host}: lookup timed out");
        }
        hosts = _targets.Allowed(hop, hosts);
        if (hosts.Count == 0) return new VerifyResult(Verdict.Unknown, $"{hop.Host}: its mail hosts are at internal addresses");
        var port = hop.Port ?? (hop.Transport == Transport.Lmtp ? 24 : 25);
        var why = "no mail host answered";
        foreach (var host in hosts.Take(2))
        {
            try
            {
                await using var connection = await OutboundSmtpConnection.OpenAsync(host, port, hop.Transport == Transport.Lmtp, _mta.MyHostname,
                    TimeSpan.FromSeconds(_mta.SmtpTimeoutSeconds), _clock.GetUtcNow(), ct);
                var reply = await connection.ProbeAsync(Sender, recipient, ct);
                await connection.QuitAsync();
                var verdict = reply.Positive ? Verdict.Deliverable : reply.Code >= 500 ? Verdict.Undeliverable : Verdict.Unknown;
                return new VerifyResult(verdict, $"host {connection.Relay} said: {reply.Text}");
            }
            catch (Exception e) when (e is SmtpConnectException or IOException or System.Net.Sockets.SocketException
                or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                why = $"connect to {host.Name}[{host.Address}]:{port}: {e.Message}";
            }
        }
        return new VerifyResult(Verdict.Unknown, why);
    }

    // Postfix's address_verify_sender, $double_bounce_sender: a sender whose own bounces are dropped, so a probe never loops.
    private string Sender => _options.VerifySender.Contains('@') || _options.VerifySender.Length == 0
        ? _options.VerifySender : _options.VerifySender + "@" + _mta.MyHostname;
}

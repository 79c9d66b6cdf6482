using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;

namespace Mta.Ingress.Policy;

/// <summary>The events anvil counts per client per time unit.</summary>
public enum ClientEvent
{
    /// <summary>A new connection (<c>smtpd_client_connection_rate_limit</c>).</summary>
    Connection,

    /// <summary>A MAIL command (<c>smtpd_client_message_rate_limit</c>).</summary>
    Message,

    /// <summary>A RCPT command (<c>smtpd_client_recipient_rate_limit</c>).</summary>
    Recipient,

    /// <summary>An AUTH command (<c>smtpd_client_auth_rate_limit</c>).</summary>
    Auth,

    /// <summary>A failed login (<see cref="IngressOptions.AuthFailureLimit"/> per <see cref="IngressOptions.AuthFailureWindowSeconds"/>).</summary>
    AuthFailure,
}

/// <summary>
/// anvil's per-client rate limits, counted for the whole cluster: each (event, client) has one schedule
/// (<see cref="RateBudget"/>) in the shared table, and a replica takes a share of it at a time and spends that share
/// locally for up to one time unit — a client seen in the last minute costs no storage request per command, and no
/// replica can admit more than the shared schedule allows. Refused events are remembered locally until the schedule
/// frees one, so a client past its limit costs no requests either. Trusted networks are exempt (Postfix
/// <c>smtpd_client_event_limit_exceptions = $mynetworks</c>). When storage fails the event is let through, as smtpd
/// goes on without anvil.
/// </summary>
public sealed class ClientRates(IngressOptions options, RelayPolicy relay, SharedRateTable? shared, TimeProvider clock, ILogger log)
{
    /// <summary>Storage requests made, for the figures in docs/benchmarks.md.</summary>
    public long Requests => shared?.Requests ?? 0;

    /// <summary>Most (event, client) pairs a replica remembers; past it, it starts over (bounded memory).</summary>
    internal const int LocalLimit = 100_000;

    private readonly ClientGroup _groups = ClientGroup.From(options);
    private readonly ConcurrentDictionary<string, Share> _shares = new();

    /// <summary>What a replica holds of one schedule.</summary>
    private sealed class Share
    {
        public readonly SemaphoreSlim Gate = new(1, 1);
        public int Tokens;
        public long TokensUntil;
        public long RefusedUntil; // read without the gate by Refusing
        public SharedRateTable.Schedule? Seen;
    }

    /// <summary>The limit for <paramref name="kind"/> (events per time unit; 0: none).</summary>
    public int Limit(ClientEvent kind) => kind switch
    {
        ClientEvent.Connection => options.ConnectionRatePerClient,
        ClientEvent.Message => options.MessageRatePerClient,
        ClientEvent.Recipient => options.RecipientRatePerClient,
        ClientEvent.Auth => options.AuthRatePerClient,
        _ => options.AuthFailureLimit,
    };

    /// <summary>The time unit of <paramref name="kind"/>'s limit.</summary>
    public TimeSpan Window(ClientEvent kind) => TimeSpan.FromSeconds(kind == ClientEvent.AuthFailure
        ? options.AuthFailureWindowSeconds : options.ClientRateWindowSeconds);

    /// <summary>
    /// Whether events of <paramref name="kind"/> from <paramref name="client"/> are counted at all: trusted networks are
    /// exempt from anvil's rates, not from the failed-login limit (a guesser inside is still a guesser).
    /// </summary>
    public bool Counts(ClientEvent kind, IPAddress client) => Limit(kind) > 0 && (kind == ClientEvent.AuthFailure || !relay.IsTrusted(client));

    /// <summary>
    /// Whether this replica knows the client has spent its <paramref name="kind"/> budget: no storage request. For failed
    /// logins, checked before a password is hashed; other replicas learn it at the client's next failure there.
    /// </summary>
    public bool Refusing(ClientEvent kind, IPAddress client)
        => Counts(kind, client) && _shares.TryGetValue($"{kind}|{_groups.Of(client)}", out var share)
           && clock.GetUtcNow().UtcTicks < Volatile.Read(ref share.RefusedUntil);

    /// <summary>Counts one event: null when it is within the limit, else Postfix's refusal for it.</summary>
    public async Task<string?> TakeAsync(ClientEvent kind, IPAddress client, CancellationToken ct)
    {
        if (!Counts(kind, client)) return null;
        return await TryTakeAsync($"{kind}|{_groups.Of(client)}", Limit(kind), Window(kind), ct) ? null : Refusal(kind, client);
    }

    /// <summary>Postfix's words when a limit is reached (smtpd.c).</summary>
    public static string Refusal(ClientEvent kind, IPAddress client) => kind switch
    {
        ClientEvent.Connection => $"421 4.7.0 Error: too many connections from {client}",
        ClientEvent.Message => $"450 4.7.1 Error: too much mail from {client}",
        ClientEvent.Recipient => $"450 4.7.1 Error: too many recipients from {client}",
        ClientEvent.Auth => $"450 4.7.1 Error: too many AUTH commands from {client}",
        _ => $"421 4.7.0 Error: too many failed authentications from {client}",
    };

    private async Task<bool> TryTakeAsync(string key, int limit, TimeSpan window, CancellationToken ct)
    {
        if (_shares.Count >= LocalLimit) _shares.Clear();
        var share = _shares.GetOrAdd(key, _ => new Share());
        await share.Gate.WaitAsync(ct);
        try
        {
            var now = clock.GetUtcNow().UtcTicks;
            if (share.Tokens > 0 && now < share.TokensUntil)
            {
                share.Tokens--;
                return true;
            }
            if (now < share.RefusedUntil) return false;
            return await TakeShareAsync(share, key, limit, window, now, ct);
        }
        catch (Azure.RequestFailedException e)
        {
            log.LogWarning("warning: client rate {Key}: storage failed, the event is let through: {Error}", key, e.Message);
            return true;
        }
        finally { share.Gate.Release(); }
    }

    // A share of the schedule: a tenth of the limit per write, so one write buys a tenth of a time unit's events. The
    // price: a client spread over n replicas may be held to (1 - (n-1)/10) of its limit while their shares last.
    private async Task<bool> TakeShareAsync(Share share, string key, int limit, TimeSpan window, long now, CancellationToken ct)
    {
        share.Tokens = 0;
        var wanted = Math.Max(1, limit / 10);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var seen = share.Seen ?? (shared is null ? new SharedRateTable.Schedule(0, null) : await shared.ReadAsync(key, ct));
            var (granted, tat) = RateBudget.Take(seen.Tat, now, limit, window, wanted);
            if (granted == 0)
            {
                share.Seen = seen;
                share.RefusedUntil = RateBudget.FreeAt(seen.Tat, limit, window);
                return false;
            }
            var written = shared is null ? new SharedRateTable.Schedule(tat, null) : await shared.TryWriteAsync(key, seen, tat, ct);
            if (written is null)
            {
                share.Seen = null; // another replica wrote first: read it and decide again
                continue;
            }
            (share.Seen, share.Tokens, share.TokensUntil) = (written, granted - 1, now + window.Ticks);
            // The last event the schedule had: the next is refused here without asking, until one frees.
            if (share.Tokens == 0 && RateBudget.Take(tat, now, limit, window, 1).Granted == 0)
                share.RefusedUntil = RateBudget.FreeAt(tat, limit, window);
            return true;
        }
        return true; // five replicas in a row wrote first: let this one through rather than refuse on contention
    }
}

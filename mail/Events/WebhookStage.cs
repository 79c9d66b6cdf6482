using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Mta.Mail.Contracts;
using Mta.Mail.Metrics;

namespace Mta.Mail.Events;

/// <summary>
/// Posts a queue message's events (a JSON array, grouped by the group commit) to the webhooks of their tenants: one
/// POST per tenant, the body a JSON array of events, signed with <c>X-Mta-Signature: t=UNIX,v1=HEX</c>, the HMAC-SHA256
/// of <c>"{t}.{body}"</c> under the tenant's secret. Anything but a 2xx, or no answer in 10 s, fails the invocation: the
/// queue trigger tries again after its backoff, and after its last try the message is parked on <c>events-poison</c>
/// (nothing lost; <c>mtactl poison requeue events</c> sends it again). A tenant that was posted before a later one failed
/// gets its events again: delivery is at least once, and each event's id names it for deduplication.
/// </summary>
public sealed class WebhookStage(WebhookTargets targets, PipelineMetrics metrics, TimeProvider clock, ILogger<WebhookStage> log)
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        Timeout = TimeSpan.FromSeconds(10),
    };

    /// <summary>Posts the events of one queue message.</summary>
    public async Task ProcessAsync(string message, CancellationToken ct)
    {
        IReadOnlyList<MailEvent> events;
        try { events = MailEvent.ParseBatch(message); }
        catch (JsonException e) { throw new InvalidQueueMessageException($"events: not events: {e.Message}"); }
        foreach (var group in events.GroupBy(e => e.Tenant))
        {
            if (targets.For(group.Key) is not { } target)
            {
                metrics.WebhookPosted("no_target", group.Count());
                continue;
            }
            await PostAsync(target, group.ToList(), ct);
        }
    }

    private async Task PostAsync(WebhookTarget target, IReadOnlyList<MailEvent> events, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(events);
        var stamp = clock.GetUtcNow().ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var request = new HttpRequestMessage(HttpMethod.Post, target.Url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("X-Mta-Signature", $"t={stamp},v1={Signature(target.Secret, stamp, body)}");
        try
        {
            using var response = await Http.SendAsync(request, ct);
            if (!response.IsSuccessStatusCode) throw new HttpRequestException($"{(int)response.StatusCode} {response.ReasonPhrase}");
            metrics.WebhookPosted("ok", events.Count);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            metrics.WebhookPosted("failed", events.Count);
            log.LogWarning("warning: webhook {Url}: {Count} event(s) not taken, tried again later: {Error}", target.Url, events.Count, Reason(e));
            throw;
        }
    }

    /// <summary>What went wrong, in the words of the innermost error (the outer one only says "sending the request").</summary>
    private static string Reason(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e.Message;
    }

    /// <summary>The signature of <paramref name="body"/> sent at <paramref name="stamp"/>: hex HMAC-SHA256 of <c>"{stamp}.{body}"</c>.</summary>
    public static string Signature(byte[] secret, string stamp, byte[] body)
        => Convert.ToHexString(HMACSHA256.HashData(secret, (byte[])[.. Encoding.ASCII.GetBytes(stamp + "."), .. body])).ToLowerInvariant();
}

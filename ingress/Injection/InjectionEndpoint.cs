using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Mta.Ingress.Acceptance;
using Mta.Mail.Contracts;

namespace Mta.Ingress.Injection;

/// <summary>
/// <c>POST /api/inject/v1</c>: a bearer token's tenant injects a message per recipient (recipients whose messages come
/// out the same share one), each queued exactly as an SMTP message is (the same acceptor: size limit, cleanup and its
/// content checks, DKIM, the spool, delivery jobs), so every later stage treats it alike. The answer is <c>202</c> with
/// every queue id only once all are queued; errors are RFC 9457 problem details naming the field. Every message is
/// rendered once before any is queued, so a bad substitution or an oversized message queues nothing. With an
/// <c>Idempotency-Key</c> header the request may be sent again after any failure: what was queued is not queued twice
/// (<see cref="InjectionLedger"/>, ADR 0006).
/// </summary>
public sealed class InjectionEndpoint(InjectionTokens tokens, IMessageAcceptor acceptor, InjectionLedger ledger, TenantRates rates,
    IngressOptions options, string hostname, TimeProvider clock, ILogger log)
{
    /// <summary>The header that makes a request safe to send again.</summary>
    public const string KeyHeader = "Idempotency-Key";

    /// <summary>The OpenAPI document of the endpoint (docs/api/inject-v1.openapi.json, embedded).</summary>
    public static readonly byte[] OpenApi = ReadOpenApi();

    private static byte[] ReadOpenApi()
    {
        using var stream = typeof(InjectionEndpoint).Assembly.GetManifestResourceStream("inject-v1.openapi.json")!;
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>Serves <see cref="OpenApi"/>, on the API's port only.</summary>
    public IResult Describe(HttpContext http)
        => http.Connection.LocalPort == options.InjectionPort ? Results.Bytes(OpenApi, "application/json") : Results.NotFound();

    /// <summary>Handles one request.</summary>
    public async Task<IResult> HandleAsync(HttpContext http)
    {
        // Only on its own listener: the health port shares the application, and a Host header can say anything.
        if (http.Connection.LocalPort != options.InjectionPort) return Results.NotFound();
        if (Authenticate(http) is not { } client)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Problem(401, "no valid bearer token", []);
        }
        var (body, request, refused) = await ReadAsync(http);
        if (refused is not null) return refused;
        if (request!.EnvelopeSender is { } sender && sender.Contains('@') && !client.MaySendAs(sender))
            return Problem(403, "the token may not send from this domain", [new("/envelope_sender", $"not one of the token's domains: {Mta.Mail.Routing.Address.DomainOf(sender)}")]);
        if (KeyOf(http) is { Problem: { } badKey }) return badKey;
        var (composer, problems) = InjectionComposer.Prepare(request, client, options.InjectionMaxRecipients, options.MessageSizeLimit);
        if (composer is null) return Problem(422, "the request cannot be injected", problems);
        var (plan, problem) = InjectionPlan.Rehearse(composer, options.MessageSizeLimit);
        if (plan is null) return Problem(problem!.Status, "the request cannot be injected", [problem]);
        try
        {
            return await InjectAsync(http, client, composer, plan, KeyOf(http).Key, body);
        }
        catch (Azure.RequestFailedException e)
        {
            log.LogWarning("injection for {Tenant}: storage failed before any message was queued: {Error}", client.Tenant, e.Message);
            return Problem(503, "storage is not available; nothing was queued", [], []);
        }
    }

    private InjectionClient? Authenticate(HttpContext http)
    {
        var header = http.Request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.Length > 7 ? tokens.Find(header[7..].Trim()) : null;
    }

    // The body as sent (its hash identifies the request under a key) and as read.
    private async Task<(byte[] Body, InjectionRequest? Request, IResult? Refused)> ReadAsync(HttpContext http)
    {
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = options.InjectionRequestSizeLimit;
        using var buffer = new MemoryStream();
        try { await http.Request.Body.CopyToAsync(buffer, http.RequestAborted); }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            return ([], null, Problem(413, $"the body is larger than {options.InjectionRequestSizeLimit} octets", []));
        }
        var body = buffer.ToArray();
        try
        {
            return JsonSerializer.Deserialize<InjectionRequest>(body) is { } request ? (body, request, null)
                : (body, null, Problem(400, "the body is not the JSON expected", [new("", "null")]));
        }
        catch (JsonException e) { return (body, null, Problem(400, "the body is not the JSON expected", [new(InjectionComposer.Pointer(e.Path), e.Message)])); }
    }

    // The Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header): absent, or 1 to 255 printable ASCII characters.
    private static (string? Key, IResult? Problem) KeyOf(HttpContext http)
    {
        if (!http.Request.Headers.TryGetValue(KeyHeader, out var values)) return (null, null);
        var key = values.ToString().Trim('"');
        return values.Count == 1 && key.Length is > 0 and <= 255 && key.All(c => c is >= ' ' and <= '~')
            ? (key, null)
            : (null, Problem(400, "the Idempotency-Key header is not usable", [new("", "one header of 1 to 255 printable ASCII characters")]));
    }

    private async Task<IResult> InjectAsync(HttpContext http, InjectionClient client, InjectionComposer composer, InjectionPlan plan, string? key, byte[] body)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(clock.GetUtcNow().ToUnixTimeMilliseconds());
        var entry = new InjectionLedger.Entry("", now, QueueId.NewSalt(), plan.Messages.Count, 0, false, now, null, default);
        if (key is not null)
        {
            var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(body));
            (var verdict, entry) = await ledger.BeginAsync(client.Tenant, key, hash, plan.Messages.Count, http.RequestAborted);
            if (Answer(verdict, entry, http) is { } answered) return answered;
        }
        if (await rates.TakeAsync(client.Tenant, plan.Messages.Count - entry.Queued, http.RequestAborted) is { } limited)
        {
            if (key is not null && entry.Queued == 0) await ledger.ForgetAsync(client.Tenant, key, entry, http.RequestAborted);
            if (limited.RetryAfter is { } wait) http.Response.Headers.RetryAfter = Math.Ceiling(wait.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Problem(limited.RetryAfter is null ? 422 : 429, "the tenant's injection limit is reached", [new("/recipients", limited.Detail)]);
        }
        var run = new InjectionRun(composer, plan, acceptor, options, hostname, client, http.Connection.RemoteIpAddress ?? IPAddress.None, log);
        var (result, last) = await run.RunAsync(entry, key is not null,
            key is null ? null : (e, queued) => ledger.CheckpointAsync(client.Tenant, key, e, queued, CancellationToken.None), CancellationToken.None);
        if (key is not null) await RecordAsync(client.Tenant, key, last, result);
        return Answer(result, composer, client, plan, http);
    }

    // What the record says when the request need not (or may not) run now.
    private IResult? Answer(InjectionLedger.Verdict verdict, InjectionLedger.Entry entry, HttpContext http)
    {
        switch (verdict)
        {
            case InjectionLedger.Verdict.Replay:
                http.Response.Headers["Idempotent-Replayed"] = "true";
                var ids = Enumerable.Range(0, entry.Refusal is null ? entry.Messages : entry.Queued).Select(n => InjectionRun.IdOf(entry, n)).ToList();
                return entry.Refusal is null ? Results.Json(new { queue_ids = ids }, statusCode: 202)
                    : Problem(422, "a message was refused: " + entry.Refusal, [new("/recipients", entry.Refusal)], ids);
            case InjectionLedger.Verdict.InProgress:
                http.Response.Headers.RetryAfter = Math.Max(1, Math.Ceiling((entry.LeaseUntil - clock.GetUtcNow()).TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                return Problem(409, "a request with this Idempotency-Key is being injected now", [new("", "try again after Retry-After seconds")]);
            case InjectionLedger.Verdict.Mismatch:
                return Problem(422, "the Idempotency-Key was used for a different request", [new("", "a key names one request body; use a new key for a new request")]);
            default:
                return null;
        }
    }

    // The end of a keyed run, recorded: finished (a replay answers the same), or stopped with the lease given up so the
    // retry may run on at once. Storage failing here only delays the retry by the lease.
    private async Task RecordAsync(string tenant, string key, InjectionLedger.Entry entry, InjectionResult result)
    {
        try
        {
            if (result.StorageError is null) await ledger.FinishAsync(tenant, key, entry, entry.Queued, result.Refusal, CancellationToken.None);
            else await ledger.ReleaseAsync(tenant, key, entry, entry.Queued, CancellationToken.None);
        }
        catch (Azure.RequestFailedException e)
        {
            log.LogWarning("injection for {Tenant}: the request's record could not be written: {Error}", tenant, e.Message);
        }
    }

    private IResult Answer(InjectionResult result, InjectionComposer composer, InjectionClient client, InjectionPlan plan, HttpContext http)
    {
        var from = http.Connection.RemoteIpAddress;
        if (result.StorageError is { } error)
        {
            log.LogWarning("injection for {Tenant}: storage failed after {Queued} of {Count} messages: {Error}", client.Tenant, result.Queued.Count, plan.Messages.Count, error);
            http.Response.Headers.RetryAfter = "5";
            return Problem(503, "storage is not available; the messages listed in queue_ids were queued, the rest were not", [], result.Queued);
        }
        if (result.Refusal is { } refusal) return Problem(422, "a message was refused: " + refusal, [new("/recipients", refusal)], result.Queued);
        log.LogInformation("injection for {Tenant} from [{Client}]: from=<{Sender}>, {Count} messages for {Recipients} recipients queued",
            client.Tenant, from, composer.Sender, result.Queued.Count, composer.Recipients.Count);
        return Results.Json(new { queue_ids = result.Queued }, statusCode: 202);
    }

    /// <summary>An RFC 9457 problem: <c>errors</c> names each field by a JSON pointer; <c>queue_ids</c> lists what was queued anyway.</summary>
    private static IResult Problem(int status, string title, IReadOnlyList<InjectionProblem> errors, IReadOnlyList<string>? queued = null)
    {
        var extensions = new Dictionary<string, object?> { ["errors"] = errors.Select(e => new { pointer = e.Pointer, detail = e.Detail }).ToList() };
        if (queued is not null) extensions["queue_ids"] = queued;
        return Results.Problem(detail: errors.Count > 0 ? string.Join("; ", errors.Take(5).Select(e => $"{e.Pointer}: {e.Detail}")) : title,
            statusCode: status, title: title, extensions: extensions);
    }
}

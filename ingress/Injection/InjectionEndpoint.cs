using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using MimeKit;
using MimeKit.IO;
using Mta.Ingress.Acceptance;
using Mta.Mail.Contracts;

namespace Mta.Ingress.Injection;

/// <summary>
/// <c>POST /api/inject/v1</c>: a bearer token's tenant injects one message per recipient, each queued exactly as an SMTP
/// message is (the same acceptor: size limit, cleanup and its content checks, DKIM, the spool, delivery jobs), so every
/// later stage treats it alike. The answer is <c>202</c> with every queue id only once all are queued; errors are RFC 9457
/// problem details naming the field. Every message is rendered once before any is queued, so a bad substitution or an
/// oversized message queues nothing.
/// </summary>
public sealed class InjectionEndpoint(InjectionTokens tokens, IMessageAcceptor acceptor, IngressOptions options, string hostname,
    TimeProvider clock, ILogger log)
{
    private static readonly FormatOptions Crlf = MakeFormat();

    private static FormatOptions MakeFormat()
    {
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        return format;
    }

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
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } body) body.MaxRequestBodySize = options.InjectionRequestSizeLimit;
        InjectionRequest? request;
        try { request = await JsonSerializer.DeserializeAsync<InjectionRequest>(http.Request.Body, cancellationToken: http.RequestAborted); }
        catch (JsonException e) { return Problem(400, "the body is not the JSON expected", [new(InjectionComposer.Pointer(e.Path), e.Message)]); }
        catch (BadHttpRequestException e) when (e.StatusCode == 413) { return Problem(413, $"the body is larger than {options.InjectionRequestSizeLimit} octets", []); }
        if (request is null) return Problem(400, "the body is not the JSON expected", [new("", "null")]);
        if (request.EnvelopeSender is { } sender && sender.Contains('@') && !client.MaySendAs(sender))
            return Problem(403, "the token may not send from this domain", [new("/envelope_sender", $"not one of the token's domains: {Mta.Mail.Routing.Address.DomainOf(sender)}")]);
        var (composer, problems) = InjectionComposer.Prepare(request, client, options.InjectionMaxRecipients, options.MessageSizeLimit);
        if (composer is null) return Problem(422, "the request cannot be injected", problems);
        if (Rehearse(composer) is { } problem) return Problem(problem.Status, "the request cannot be injected", [problem]);
        return await QueueAsync(composer, client, http.Connection.RemoteIpAddress ?? IPAddress.None, http.RequestAborted);
    }

    private InjectionClient? Authenticate(HttpContext http)
    {
        var header = http.Request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.Length > 7 ? tokens.Find(header[7..].Trim()) : null;
    }

    // Every message rendered and measured, none kept: a request is refused whole or queued whole.
    private InjectionProblem? Rehearse(InjectionComposer composer)
    {
        for (var i = 0; i < composer.Recipients.Count; i++)
        {
            var (message, problem) = composer.Compose(i);
            if (problem is not null) return problem;
            using var measure = new MeasuringStream();
            message!.WriteTo(Crlf, measure);
            if (measure.Length > options.MessageSizeLimit)
                return new($"/recipients/{i}", $"larger than the message size limit ({measure.Length} > {options.MessageSizeLimit} octets)", 413);
        }
        return null;
    }

    private async Task<IResult> QueueAsync(InjectionComposer composer, InjectionClient client, IPAddress from, CancellationToken ct)
    {
        var ids = new List<string>();
        for (var i = 0; i < composer.Recipients.Count; i++)
        {
            using var content = acceptor.NewMessage(clock.GetUtcNow());
            composer.Compose(i).Message!.WriteTo(Crlf, content);
            var envelope = Envelope(composer, i, content, client, from);
            string? refused;
            try { refused = await acceptor.AcceptAsync(envelope, content, ct); }
            catch (StorageUnavailableException e)
            {
                log.LogWarning("injection for {Tenant}: storage failed after {Queued} of {Count} messages: {Error}", client.Tenant, ids.Count, composer.Recipients.Count, e.Message);
                return Problem(503, "storage is not available; the messages listed in queue_ids were queued, the rest were not", [], ids);
            }
            if (refused is not null) return Problem(422, "a message was refused: " + refused, [new($"/recipients/{i}", refused)], ids);
            ids.Add(envelope.Id);
        }
        log.LogInformation("injection for {Tenant} from [{Client}]: from=<{Sender}>, {Count} messages queued", client.Tenant, from, composer.Sender, ids.Count);
        return Results.Json(new { queue_ids = ids }, statusCode: 202);
    }

    private IncomingEnvelope Envelope(InjectionComposer composer, int i, SpoolWriter content, InjectionClient client, IPAddress from) => new()
    {
        Id = content.Name,
        Sender = composer.Sender,
        Recipients = [composer.Recipients[i]],
        ClientAddress = (from.IsIPv4MappedToIPv6 ? from.MapToIPv4() : from).ToString(),
        Helo = client.Tenant,
        ArrivalTime = clock.GetUtcNow(),
        Size = content.Written,
        BlobName = content.Name,
        ReceivedBy = hostname,
        Protocol = "HTTP",
        TrustedClient = true, // the token authenticated it, as a login does for submission
        Login = client.Tenant,
    };

    /// <summary>An RFC 9457 problem: <c>errors</c> names each field by a JSON pointer; <c>queue_ids</c> lists what was queued anyway.</summary>
    private static IResult Problem(int status, string title, IReadOnlyList<InjectionProblem> errors, IReadOnlyList<string>? queued = null)
    {
        var extensions = new Dictionary<string, object?> { ["errors"] = errors.Select(e => new { pointer = e.Pointer, detail = e.Detail }).ToList() };
        if (queued is not null) extensions["queue_ids"] = queued;
        return Results.Problem(detail: errors.Count > 0 ? string.Join("; ", errors.Take(5).Select(e => $"{e.Pointer}: {e.Detail}")) : title,
            statusCode: status, title: title, extensions: extensions);
    }
}

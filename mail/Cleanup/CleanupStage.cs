using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using MimeKit.Utils;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Routing;
using Mta.Mail.Spool;

namespace Mta.Mail.Cleanup;

/// <summary>
/// Postfix's cleanup and trivial-rewrite: reads an accepted message's header, adds the
/// headers a message must have, routes every recipient and hands one job per next hop to delivery.
/// The stored bytes are never rewritten: added headers travel in the job and are sent before them.
/// </summary>
public sealed class CleanupStage(
    MessageSpool spool,
    MailQueues queues,
    Router router,
    IOptions<MtaOptions> options,
    TimeProvider clock,
    ILogger<CleanupStage> log)
{
    private readonly MtaOptions _options = options.Value;

    /// <summary>Processes one envelope from the <c>incoming</c> queue.</summary>
    public async Task ProcessAsync(IncomingEnvelope envelope, CancellationToken ct = default)
    {
        Validate(envelope);

        HeaderList headers;
        await using (var stream = envelope.Content is { } inline ? new MemoryStream(inline, writable: false) : await spool.OpenReadAsync(envelope.BlobName, ct))
        {
            // Only the header block is parsed: the body is streamed later, never loaded here.
            headers = await HeaderList.LoadAsync(ParserOptions.Default, stream, ct);
        }
        var content = envelope.Content;

        var prefix = BuildHeaderPrefix(envelope, headers);
        var messageId = headers[HeaderId.MessageId] ?? "";
        var jobs = 0;
        foreach (var (hop, recipients) in router.Group(envelope.Recipients, _options.DestinationRecipientLimit))
        {
            var job = new DeliveryJob
            {
                MessageId = envelope.Id,
                BlobName = envelope.BlobName,
                HeaderPrefix = prefix,
                Sender = envelope.Sender,
                Recipients = recipients,
                NextHop = hop,
                ArrivalTime = envelope.ArrivalTime,
                Dsn = envelope.Dsn,
                SmtpUtf8 = envelope.SmtpUtf8,
                QueuedTime = clock.GetUtcNow(),
                Content = content,
            };
            if (content is not null && await queues.TrySendAsync(QueueNames.Delivery, job, ct))
            {
                jobs++;
                continue;
            }
            if (content is not null)
            {
                // Too many recipients to carry the bytes in every job: spool them once (idempotent on a retry) and refer to the blob.
                try { await spool.WriteAsync(envelope.BlobName, new MemoryStream(content, writable: false), ct); }
                catch (Azure.RequestFailedException e) when (e.Status == 409) { /* written by an earlier attempt */ }
                content = null;
                job = job with { Content = null };
            }
            await queues.SendAsync(QueueNames.Delivery, job, ct);
            jobs++;
        }

        log.LogInformation("{QueueId}: message-id={MessageId}, from=<{Sender}>, size={Size}, nrcpt={Count}, jobs={Jobs}",
            envelope.Id, messageId.Trim(), envelope.Sender, envelope.Size, envelope.Recipients.Count, jobs);
    }

    /// <summary>
    /// The headers cleanup prepends: always a Received header; Message-ID and Date when the
    /// message lacks them (RFC 5322 requires Date; Postfix adds both).
    /// </summary>
    internal string BuildHeaderPrefix(IncomingEnvelope envelope, HeaderList existing)
    {
        var added = new HeaderList();
        added.Add(new Header("Received", ReceivedValue(envelope)));
        if (!existing.Contains(HeaderId.MessageId))
            added.Add(new Header(HeaderId.MessageId, $"<{envelope.ArrivalTime.UtcDateTime:yyyyMMddHHmmss}.{envelope.Id}@{_options.MyHostname}>"));
        if (!existing.Contains(HeaderId.Date))
            added.Add(new Header(HeaderId.Date, DateUtils.FormatDate(envelope.ArrivalTime)));

        using var buffer = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        added.WriteTo(format, buffer);
        var text = System.Text.Encoding.UTF8.GetString(buffer.ToArray());
        // HeaderList writes the blank line that ends a header block; the prefix continues into the message's own header.
        return text.EndsWith("\r\n\r\n", StringComparison.Ordinal) ? text[..^2] : text;
    }

    private string ReceivedValue(IncomingEnvelope e)
    {
        var forClause = e.Recipients.Count == 1 ? $"\r\n\tfor <{e.Recipients[0]}>" : "";
        var by = e.ReceivedBy ?? _options.MyHostname;
        var tls = e.Tls is null ? "" : $"\r\n\t(using {e.Tls})";
        return $"from {e.Helo} ([{e.ClientAddress}]){tls}\r\n\tby {by} (Mta) with {e.Protocol} id {e.Id}{forClause};\r\n\t"
            + DateUtils.FormatDate(e.ArrivalTime);
    }

    private static void Validate(IncomingEnvelope e)
    {
        if (string.IsNullOrWhiteSpace(e.Id) || string.IsNullOrWhiteSpace(e.BlobName))
            throw new InvalidQueueMessageException("envelope without id or blob name");
        if (e.Recipients is null || e.Recipients.Count == 0)
            throw new InvalidQueueMessageException($"{e.Id}: envelope without recipients");
        if (e.Sender is null)
            throw new InvalidQueueMessageException($"{e.Id}: envelope without sender");
        // Values end up in a header: refuse anything that could break out of it.
        foreach (var v in new[] { e.Helo, e.ClientAddress, e.Sender, e.Tls ?? "", e.Protocol }.Concat(e.Recipients))
            if (v is null || v.AsSpan().IndexOfAny('\r', '\n') >= 0)
                throw new InvalidQueueMessageException($"{e.Id}: envelope field with a line break");
    }
}

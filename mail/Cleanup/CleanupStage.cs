using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using MimeKit.IO;
using MimeKit.Utils;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Dkim;
using Mta.Mail.Metrics;
using Mta.Mail.Queues;
using Mta.Mail.Rewriting;
using Mta.Mail.Routing;
using Mta.Mail.Spool;
using Mta.Mail.Tracking;

namespace Mta.Mail.Cleanup;

/// <summary>
/// Postfix's cleanup and trivial-rewrite: reads an accepted message's header, fixes it up (Received on top, Return-Path
/// and Delivered-To removed, over-long fields cut, Message-ID and Date added for submissions), applies the hop limit and
/// the header and body checks, rewrites the envelope addresses, DKIM-signs mail from trusted clients, routes every
/// recipient and hands one job per next hop to delivery. A spooled body is never rewritten: the new header travels in
/// the job and is sent in front of the stored body. A message MimeKit cannot parse a header from is delivered as-is.
/// </summary>
public sealed class CleanupStage
{
    private readonly SpoolLifetime _spool;
    private readonly MailQueues _queues;
    private readonly Suppression.SuppressionList? _suppression;
    private readonly Feedback.ReturnedMail? _returned;
    private readonly Router _router;
    private readonly AddressRewriter _rewriter;
    private readonly DkimSigning _dkim;
    private readonly Submission.SenderLogins? _senderLogins;
    private readonly WaitingMail _waiting;
    private readonly PipelineMetrics? _metrics;
    private readonly TimeProvider _clock;
    private readonly ILogger<CleanupStage> _log;
    private readonly MtaOptions _options;
    private readonly ContentInspector _inspector;

    /// <summary>Creates the stage; the checks files are loaded here (a broken one stops the start).</summary>
    public CleanupStage(SpoolLifetime spool, MailQueues queues, Router router, AddressRewriter rewriter, DkimSigning dkim,
        WaitingMail waiting, ContentInspector inspector, IOptions<MtaOptions> options, TimeProvider clock,
        ILogger<CleanupStage> log, PipelineMetrics? metrics = null, Submission.SenderLogins? senderLogins = null,
        Suppression.SuppressionList? suppression = null, Feedback.ReturnedMail? returned = null)
    {
        _suppression = suppression;
        _returned = returned;
        _inspector = inspector;
        _senderLogins = senderLogins;
        _metrics = metrics;
        (_spool, _queues, _router, _rewriter, _dkim, _waiting, _clock, _log, _options)
            = (spool, queues, router, rewriter, dkim, waiting, clock, log, options.Value);
    }

    /// <summary>
    /// Processes one envelope from the <c>incoming</c> queue. <paramref name="dequeueCount"/> above 1 means an earlier
    /// run may have queued this message's jobs already: they get the same ids, marked as possible duplicates.
    /// </summary>
    public Task ProcessAsync(IncomingEnvelope envelope, CancellationToken ct = default, long dequeueCount = 1)
        => RunAsync(envelope, dequeueCount > 1 || envelope.MaybeQueued, refuseInReply: false, ct);

    /// <summary>
    /// Cleanup while the client waits for its reply, as Postfix's smtpd hands each message to cleanup before it answers:
    /// the ingress calls this once the message is stored (inline or in the spool), and the jobs go straight to delivery
    /// (one queue hop less). Returns null when the message is queued (or discarded) and may be acknowledged; otherwise
    /// the refusal the client gets instead of a bounce (a content check's REJECT, too many hops), e.g.
    /// <c>554 5.4.6 Too many hops</c>.
    /// </summary>
    /// <param name="envelope">The message; its bytes inline, or already in the spool.</param>
    /// <param name="head">For a spooled message, its header block as the ingress still holds it: read from there instead
    /// of from the spool (when the blank line that ends it is there).</param>
    /// <param name="ct">Cancellation.</param>
    public Task<string?> ProcessBeforeReplyAsync(IncomingEnvelope envelope, ReadOnlyMemory<byte> head = default, CancellationToken ct = default)
        => RunAsync(envelope, envelope.MaybeQueued, refuseInReply: true, ct, head);

    private async Task<string?> RunAsync(IncomingEnvelope envelope, bool again, bool refuseInReply, CancellationToken ct, ReadOnlyMemory<byte> head = default)
    {
        Validate(envelope);
        if (await ReadHeaderAsync(envelope, again, head, ct) is not { } header) return null;
        var messageId = header.Fields[HeaderId.MessageId]?.Trim() ?? "";
        var verdict = await CheckAsync(envelope, header, ct);
        if (verdict?.Action == CheckAction.Discard)
        {
            await DiscardAsync(envelope, messageId, verdict, ct);
            return null;
        }
        var sender = _rewriter.RewriteSender(envelope.Sender);
        if (RefusalFor(header.Fields, verdict) is { } refusal)
            return await RefuseAsync(envelope, messageId, sender, refusal, refuseInReply, ct);
        await QueueAsync(envelope, header, verdict, sender, again, messageId, ct);
        return null;
    }

    /// <summary>An accepted message's header block as parsed, and where its body starts.</summary>
    /// <param name="Fields">The header fields; empty when the message does not start with a header.</param>
    /// <param name="BodyOffset">Where the body starts in the message's bytes.</param>
    /// <param name="Parsed">False for a message that does not start with a header: its bytes are delivered as they came.</param>
    private sealed record ParsedHeader(HeaderList Fields, long BodyOffset, bool Parsed);

    /// <summary>Why a message is refused (<paramref name="Hops"/> counted when for a mail loop), and its SMTP code.</summary>
    private sealed record Refusal(string Reason, string Code, int Hops = 0);

    /// <summary>
    /// Envelope phase: the header block, read from the inline bytes, from the octets the ingress still holds (when the
    /// header ends within them), or from the spool. Null when an earlier run finished the message and the spool was
    /// cleaned before this queue message came back.
    /// </summary>
    private async Task<ParsedHeader?> ReadHeaderAsync(IncomingEnvelope envelope, bool again, ReadOnlyMemory<byte> head, CancellationToken ct)
    {
        var inline = envelope.Content;
        if (inline is not null || !HeaderEndsWithin(head)) head = default;
        byte[]? rented = null;
        try
        {
            ArraySegment<byte> start;
            var more = false;
            if (inline is not null) start = inline;
            else if (head.Length > 0) start = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(head, out var segment) ? segment : head.ToArray();
            else (rented, start, more) = await ReadStartAsync(envelope.BlobName, ct);
            // Only the header block is parsed, from at most the message's first 256 KiB: the body is streamed later.
            return ParseHeader(envelope, start, more);
        }
        catch (Azure.RequestFailedException e) when (e.Status == 404 && again)
        {
            _log.LogInformation("{QueueId}: already processed and delivered; nothing left to do", envelope.Id);
            return null;
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Checks phase, in Postfix's order: header fix-up and header checks as the header goes by, then the body checks,
    /// all within one time budget. Returns the deciding match, if any.
    /// </summary>
    private async Task<CheckMatch?> CheckAsync(IncomingEnvelope envelope, ParsedHeader header, CancellationToken ct)
    {
        var who = $"from [{envelope.ClientAddress}]; from=<{envelope.Sender}> to=<{envelope.Recipients[0]}> proto={envelope.Protocol} helo=<{envelope.Helo}>";
        var budget = new CheckBudget();
        var verdict = InspectHeader(envelope, header.Fields, who, budget);
        if (verdict is null && _inspector.BodyChecks && header.Parsed)
            verdict = await InspectBodyAsync(envelope, envelope.Content, header.BodyOffset, who, budget, ct);
        return verdict;
    }

    private async Task DiscardAsync(IncomingEnvelope envelope, string messageId, CheckMatch verdict, CancellationToken ct)
    {
        _log.LogInformation("{QueueId}: message-id={MessageId}, from=<{Sender}>, nrcpt={Count}, status=discarded ({Reason})",
            envelope.Id, messageId, envelope.Sender, envelope.Recipients.Count, verdict.Text.Length > 0 ? verdict.Text : "content check");
        await _spool.DiscardAsync(MessageContent.Of(envelope), ct);
        _metrics?.Cleaned("discarded");
    }

    /// <summary>
    /// Whether the message is refused: a content check's REJECT, or a mail loop (RFC 5321 §6.3: a permanent failure;
    /// Postfix counts its own Received header too).
    /// </summary>
    private Refusal? RefusalFor(HeaderList headers, CheckMatch? verdict)
    {
        if (verdict?.Action == CheckAction.Reject)
            return new Refusal("5.7.1 " + (verdict.Text.Length > 0 ? verdict.Text : "message content rejected"), "550");
        var hops = CountReceived(headers) + 1;
        return hops >= _options.HopCountLimit ? new Refusal("5.4.6 Too many hops", "554", hops) : null;
    }

    /// <summary>
    /// Refuses the message: in the reply while the client is still there to hear it (never a bounce to a sender who may
    /// be forged), otherwise as a bounce to every recipient. Returns the reply, or null once the bounce is queued.
    /// </summary>
    private async Task<string?> RefuseAsync(IncomingEnvelope envelope, string messageId, string sender, Refusal refusal, bool inReply, CancellationToken ct)
    {
        if (refusal.Hops > 0)
            _log.LogWarning("{QueueId}: message-id={MessageId}, from=<{Sender}>: too many hops ({Hops} Received headers, hopcount_limit {Limit})",
                envelope.Id, messageId, envelope.Sender, refusal.Hops, _options.HopCountLimit);
        if (inReply)
        {
            _log.LogInformation("{QueueId}: message-id={MessageId}, from=<{Sender}>, nrcpt={Count}, status=rejected ({Reason})",
                envelope.Id, messageId, envelope.Sender, envelope.Recipients.Count, refusal.Reason);
            _metrics?.Cleaned("rejected");
            return $"{refusal.Code} {refusal.Reason}";
        }
        await FinishAsync(envelope, sender, envelope.Recipients.Select(r => (r, refusal.Reason)).ToList(), [], null, ct);
        _log.LogInformation("{QueueId}: message-id={MessageId}, from=<{Sender}>, nrcpt={Count}, status=bounced ({Reason})",
            envelope.Id, messageId, envelope.Sender, envelope.Recipients.Count, refusal.Reason);
        _metrics?.Cleaned("bounced");
        return null;
    }

    /// <summary>
    /// Rewriting, routing and writing: the recipients rewritten, the header built (and DKIM-signed for trusted clients),
    /// one job per next hop, and the jobs and any report for unroutable recipients queued.
    /// </summary>
    private async Task QueueAsync(IncomingEnvelope envelope, ParsedHeader parsed, CheckMatch? verdict, string sender, bool again, string messageId,
        CancellationToken ct)
    {
        var rewritten = _rewriter.RewriteRecipients(envelope.Recipients);
        foreach (var (rcpt, why) in rewritten.Failures)
            _log.LogWarning("{QueueId}: to=<{Recipient}>: {Reason}", envelope.Id, rcpt, why);
        var forUs = await WithoutReturnedAsync(envelope, rewritten.Recipients, ct);
        envelope = envelope with { Tags = Events.EventTags.Of(envelope, parsed.Fields, _options.TagHeaders) };

        var header = BuildHeader(envelope, parsed.Fields, parsed.Parsed);
        if (parsed.Parsed && envelope.TrustedClient && _dkim.Configured)
            header = await SignAsync(envelope, parsed.Fields, header, envelope.Content, parsed.BodyOffset, ct);

        // A content check's HOLD, or a milter's quarantine in the ingress (the envelope says why).
        var held = verdict?.Action == CheckAction.Hold || envelope.Hold is not null;
        var queue = held ? QueueNames.Hold : QueueNames.Delivery;
        var heldFor = verdict?.Action == CheckAction.Hold ? verdict.Text : envelope.Hold ?? verdict?.Text;
        var recipients = await WithoutSuppressedAsync(envelope, sender, forUs, messageId, ct);
        var jobs = Jobs(envelope, sender, recipients, again, messageId);
        await FinishAsync(envelope, sender, rewritten.Failures, jobs, (header, parsed.Parsed ? parsed.BodyOffset : 0, queue, heldFor), ct);

        _log.LogInformation("{QueueId}: message-id={MessageId}, from=<{Sender}>, size={Size}, nrcpt={Count}, jobs={Jobs}{Held}",
            envelope.Id, messageId, sender, envelope.Size, recipients.Count, jobs.Count, queue == QueueNames.Hold ? ", status=held" : "");
        _metrics?.Cleaned(queue == QueueNames.Hold ? "held" : "queued");
    }

    /// <summary>
    /// The recipients outside the bounce domains; what came to those is read as a report (<see cref="Feedback.ReturnedMail"/>)
    /// and goes no further.
    /// </summary>
    private async Task<IReadOnlyList<(string Address, string Original)>> WithoutReturnedAsync(IncomingEnvelope envelope,
        IReadOnlyList<(string Address, string Original)> recipients, CancellationToken ct)
    {
        if (_returned is not { Domains.Any: true } returned) return recipients;
        var reports = recipients.Where(r => returned.Domains.Contains(r.Address)).ToList();
        if (reports.Count == 0) return recipients;
        await returned.ReadAsync(envelope, reports.Select(r => r.Address).ToList(), ct);
        return recipients.Except(reports).ToList();
    }

    /// <summary>
    /// Routing into jobs: one per next hop (and per <c>destination_recipient_limit</c> recipients), numbered in a
    /// fixed order so a second run for the same message makes the same job ids. Mail from a bounce domain, or sent
    /// with XVERP, goes one recipient per job, each with its VERP return path.
    /// </summary>
    private List<DeliveryJob> Jobs(IncomingEnvelope envelope, string sender, IReadOnlyList<(string Address, string Original)> recipients, bool again,
        string messageId)
    {
        var dsn = CarryDsn(envelope.Dsn, recipients);
        var verp = envelope.Verp is not null || _returned?.Domains.Contains(sender) == true;
        var delimiters = envelope.Verp is { Length: > 0 } asked ? asked : _options.VerpDelimiters;
        return _router.Group(recipients.Select(r => r.Address), verp && sender.Length > 0 ? 1 : _options.DestinationRecipientLimit, sender)
            .Select((g, n) => new DeliveryJob
            {
                MessageId = envelope.Id,
                JobId = $"{envelope.Id}.{n}",
                BlobName = envelope.BlobName,
                Sender = verp ? Feedback.VerpAddress.Encode(sender, g.Recipients[0], delimiters) : sender,
                Recipients = g.Recipients,
                NextHop = g.Hop,
                ArrivalTime = envelope.ArrivalTime,
                Dsn = dsn,
                SmtpUtf8 = envelope.SmtpUtf8,
                MaybeDuplicate = again,
                Size = envelope.Size,
                Claim = envelope.DeliverOnce ? Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)) : null,
                Tags = envelope.Tags,
                MessageIdField = messageId.Length > 0 ? messageId : null,
            }).ToList();
    }

    /// <summary>
    /// The recipients not on the suppression list of the message's tenant; each suppressed one is logged
    /// (<c>status=suppressed</c>) and, with events on, reported as a Suppressed event. All of them suppressed: no jobs.
    /// </summary>
    private async Task<IReadOnlyList<(string Address, string Original)>> WithoutSuppressedAsync(IncomingEnvelope envelope, string sender,
        IReadOnlyList<(string Address, string Original)> recipients, string messageId, CancellationToken ct)
    {
        if (_suppression is not { Enabled: true }) return recipients;
        var tenant = envelope.Tags?.GetValueOrDefault(Events.OutcomeEvents.TenantTag);
        var found = await Task.WhenAll(recipients.Select(r => _suppression.FindAsync(tenant, r.Address, ct)));
        var kept = new List<(string Address, string Original)>();
        var events = new List<Events.MailEvent>();
        for (var i = 0; i < recipients.Count; i++)
        {
            if (found[i] is not { } entry)
            {
                kept.Add(recipients[i]);
                continue;
            }
            _log.LogInformation("{QueueId}: to=<{Recipient}>, status=suppressed ({Category} since {Added:yyyy-MM-dd})", envelope.Id, recipients[i].Address, entry.Category, entry.Added);
            events.Add(Events.OutcomeEvents.Suppressed(envelope, sender, recipients[i].Address, entry, _clock.GetUtcNow()) with
            {
                MessageId = messageId.Length > 0 ? messageId : null,
            });
        }
        if (_options.Events) await Task.WhenAll(events.Select(e => _queues.TrySendEventAsync(e, ct)));
        return kept;
    }

    /// <summary>True when the blank line that ends the header block lies within <paramref name="head"/>.</summary>
    private static bool HeaderEndsWithin(ReadOnlyMemory<byte> head)
        => head.Span.IndexOf("\r\n\r\n"u8) >= 0 || head.Span.StartsWith("\r\n"u8);

    /// <summary>
    /// Queues what became of the message: a report for <paramref name="failed"/> recipients and the delivery jobs. A
    /// spooled message is handed over to them first (<see cref="SpoolLifetime.HandOverAsync"/>), so its blob lives
    /// exactly as long as something still needs it.
    /// </summary>
    private async Task FinishAsync(IncomingEnvelope envelope, string sender, IReadOnlyList<(string Recipient, string Reason)> failed,
        IReadOnlyList<DeliveryJob> jobs, (byte[] Header, long BodyOffset, string Queue, string? Why)? content, CancellationToken ct)
    {
        var reported = failed.Where(f => DsnRequest.Wants(envelope.Dsn, f.Recipient, DsnAction.Failed))
            .Select(f => new ReportedRecipient(f.Recipient, f.Reason)).ToList();
        var stored = MessageContent.Of(envelope);
        var reportReference = stored.IsSpooled && reported.Count > 0 ? SpoolLifetime.ReportReference(envelope.Id, 0, "cleanup") : null;
        jobs = await _spool.HandOverAsync(envelope.Id, stored, jobs, reportReference, ct);
        if (reported.Count > 0)
            await _queues.SendAsync(QueueNames.Bounce, new ReportJob
            {
                MessageId = envelope.Id,
                BlobName = envelope.BlobName,
                Sender = sender,
                ArrivalTime = envelope.ArrivalTime,
                Recipients = reported,
                Dsn = envelope.Dsn,
                Content = envelope.Content,
                Reference = reportReference,
            }, ct);
        if (content is { } c)
            await SendJobsAsync(envelope, jobs, Cleaned(envelope, c.Header, c.BodyOffset), c.Queue, c.Why, ct);
    }

    /// <summary>
    /// The message as it leaves cleanup: a small one whole (new header and body) in its jobs; a spooled one as the new
    /// header and where the body starts in its blob, which is never rewritten.
    /// </summary>
    private static MessageContent Cleaned(IncomingEnvelope envelope, byte[] header, long bodyOffset)
        => envelope.Content is { } inline
            ? MessageContent.InlineBytes(envelope.BlobName, Concat(header, inline.AsSpan((int)bodyOffset)))
            : MessageContent.Blob(envelope.BlobName, header, bodyOffset);

    private async Task SendJobsAsync(IncomingEnvelope envelope, IReadOnlyList<DeliveryJob> jobs, MessageContent cleaned, string queue, string? why,
        CancellationToken ct)
    {
        var copied = false;
        for (var n = 0; n < jobs.Count; n++)
        {
            var job = jobs[n] with { QueuedTime = _clock.GetUtcNow() };
            if (!copied)
            {
                if (await TrySendAsync(cleaned.ApplyTo(job), queue, why, ct)) continue;
                cleaned = await SpoolFinishedAsync(envelope, cleaned, jobs.Skip(n), ct);
                copied = true;
            }
            var onBlob = cleaned.ApplyTo(job);
            if (queue == QueueNames.Delivery && await _queues.TrySendDeliveryAsync(onBlob, ct)) continue;
            var receipt = await _queues.SendAsync(queue, onBlob, ct);
            if (queue == QueueNames.Hold) await _waiting.PutAsync(WaitingMail.Held, onBlob, receipt, why, null, ct);
        }
    }

    /// <summary>Queues a job with its content when that fits in a queue message; false when it does not.</summary>
    private async Task<bool> TrySendAsync(DeliveryJob job, string queue, string? why, CancellationToken ct)
    {
        // Group-committed with other messages' jobs for the same next hop.
        if (queue == QueueNames.Delivery) return await _queues.TrySendDeliveryAsync(job, ct);
        if (await _queues.TrySendAsync(queue, job, ct) is not { } sent) return false;
        await _waiting.PutAsync(WaitingMail.Held, job, sent, why, null, ct);
        return true;
    }

    /// <summary>
    /// Too big for a queue message (many recipients with inline bytes, or a huge header): the finished message stored
    /// once, under a name of its own, for this and the later jobs to refer to. An inline message takes its blob name
    /// (its remaining jobs become the holders of a blob it did not have); a spooled one gets a <c>.cleaned</c> copy,
    /// held by the same holders as its original and deleted with it.
    /// </summary>
    private async Task<MessageContent> SpoolFinishedAsync(IncomingEnvelope envelope, MessageContent cleaned, IEnumerable<DeliveryJob> holders,
        CancellationToken ct)
    {
        var name = cleaned.IsSpooled ? envelope.BlobName + ".cleaned" : envelope.BlobName;
        await using (var finished = cleaned.IsSpooled
                         ? await FinishedMessageAsync(envelope.BlobName, cleaned.Header!, cleaned.BodyOffset, ct)
                         : new MemoryStream(cleaned.Inline!, writable: false))
            await _spool.SpoolAsync(envelope.Id, name, finished, cleaned.IsSpooled ? null : holders.Select(j => j.JobId), ct);
        return MessageContent.Blob(name);
    }

    private async Task<Stream> FinishedMessageAsync(string blob, byte[] header, long bodyOffset, CancellationToken ct)
    {
        var chained = new ChainedStream();
        chained.Add(new MemoryStream(header, writable: false));
        chained.Add(await _spool.Spool.OpenReadAsync(blob, bodyOffset, null, ct));
        return chained;
    }

    /// <summary>
    /// DSN parameters follow a rewritten recipient: its NOTIFY stays, and ORCPT names the address the client gave when
    /// the client did not (RFC 3461 §4.2, Postfix's <c>enable_original_recipient</c>).
    /// </summary>
    private static DsnRequest? CarryDsn(DsnRequest? dsn, IReadOnlyList<(string Address, string Original)> recipients)
    {
        if (recipients.All(r => r.Address == r.Original)) return dsn;
        var map = new Dictionary<string, RecipientDsn>(StringComparer.OrdinalIgnoreCase);
        foreach (var (address, original) in recipients)
        {
            var given = dsn?.Recipients.GetValueOrDefault(original);
            map[address] = address == original ? given ?? new RecipientDsn(null, null)
                : new RecipientDsn(given?.Notify, given?.OriginalRecipient ?? "rfc822;" + original);
        }
        return (dsn ?? new DsnRequest()) with { Recipients = map };
    }

    /// <summary>
    /// Header fix-up and header checks, in one pass: Return-Path and Delivered-To go (they are added at final
    /// delivery), fields over <c>header_size_limit</c> are cut, and each logical header line meets the checks.
    /// Returns the deciding match (REJECT, DISCARD, or HOLD), if any.
    /// </summary>
    internal CheckMatch? InspectHeader(IncomingEnvelope envelope, HeaderList headers, string who, CheckBudget budget)
    {
        headers.RemoveAll(HeaderId.ReturnPath);
        headers.RemoveAll("Delivered-To");
        foreach (var h in headers.Where(h => h.RawValue.Length > _options.HeaderSizeLimit))
        {
            h.SetRawValue(Cut(h.RawValue, _options.HeaderSizeLimit));
            _log.LogWarning("{QueueId}: header {Field} longer than header_size_limit {Limit}: excess discarded", envelope.Id, h.Field, _options.HeaderSizeLimit);
        }
        return _inspector.InspectHeader(envelope.Id, headers, who, budget);
    }

    internal async Task<CheckMatch?> InspectBodyAsync(IncomingEnvelope envelope, byte[]? inline, long bodyOffset, string who, CheckBudget budget,
        CancellationToken ct)
    {
        if (inline is not null)
            return _inspector.InspectBody(envelope.Id, inline.AsSpan((int)Math.Min(bodyOffset, inline.Length)), who, budget);
        await using var part = await _spool.Spool.OpenReadAsync(envelope.BlobName, bodyOffset, _inspector.BodyLimit, ct);
        using var copy = new MemoryStream();
        await part.CopyToAsync(copy, ct);
        return _inspector.InspectBody(envelope.Id, copy.ToArray(), who, budget);
    }

    private static int CountReceived(HeaderList headers) => headers.Count(h => h.Id == HeaderId.Received);

    /// <summary>
    /// The header as it leaves cleanup: Received on top; Message-ID and Date added for trusted clients when missing
    /// (Postfix adds them only for <c>local_header_rewrite_clients</c>); the rest as it came, byte for byte. Ends with the
    /// blank line. For an unparsable message: the added lines only, which the stored bytes then follow.
    /// </summary>
    internal byte[] BuildHeader(IncomingEnvelope envelope, HeaderList existing, bool parsed)
    {
        var all = new HeaderList();
        // Set raw: MimeKit would re-fold a value given as text, and this one is folded already, Postfix's way.
        var received = new Header("Received", "");
        received.SetRawValue(Encoding.UTF8.GetBytes(" " + ReceivedValue(envelope) + "\r\n"));
        all.Add(received);
        if (parsed && envelope.TrustedClient)
        {
            if (!existing.Contains(HeaderId.MessageId))
                all.Add(new Header(HeaderId.MessageId, $"<{envelope.ArrivalTime.UtcDateTime:yyyyMMddHHmmss}.{envelope.Id}@{_options.MyHostname}>"));
            if (!existing.Contains(HeaderId.Date))
                all.Add(new Header(HeaderId.Date, DateUtils.FormatDate(envelope.ArrivalTime)));
        }
        foreach (var h in existing) all.Add(h);
        var bytes = Write(all);
        // HeaderList writes the blank line that ends a header block; unparsed bytes continue the header instead.
        return parsed ? bytes : bytes[..^2];
    }

    internal async Task<byte[]> SignAsync(IncomingEnvelope envelope, HeaderList headers, byte[] header, byte[]? inline, long bodyOffset, CancellationToken ct)
    {
        var from = headers[HeaderId.From];
        var domain = from is not null && InternetAddressList.TryParse(from, out var list) && list.Mailboxes.FirstOrDefault() is { } mailbox
            ? mailbox.Domain : Address.DomainOf(envelope.Sender);
        domain = domain.TrimEnd('.').ToLowerInvariant();
        var key = _dkim.KeyFor(domain);
        if (key is null) return header;
        if (envelope.Login is { } login && _senderLogins is not null && !_senderLogins.OwnsDomain(login, domain))
        {
            // A login signs only for its own domains (the sender login map), whatever the signing table holds.
            _log.LogWarning("{QueueId}: not DKIM-signed: From domain {Domain} is not one that login {Login} owns", envelope.Id, domain, login);
            return header;
        }

        Header signature;
        if (inline is not null)
        {
            using var whole = new MemoryStream(Concat(header, inline.AsSpan((int)bodyOffset)), writable: false);
            signature = _dkim.Sign(key, whole, ct);
        }
        else
        {
            // The body hash needs the whole body: through a temporary file, so a large message is never held in memory.
            await using var file = new FileStream(Path.GetTempFileName(), FileMode.Create, FileAccess.ReadWrite, FileShare.None, 81920, FileOptions.DeleteOnClose);
            await file.WriteAsync(header, ct);
            await using (var body = await _spool.Spool.OpenReadAsync(envelope.BlobName, bodyOffset, null, ct))
                await body.CopyToAsync(file, ct);
            file.Position = 0;
            signature = _dkim.Sign(key, file, ct);
        }
        var signed = Write([signature]);
        _log.LogInformation("{QueueId}: DKIM-Signature field added (s={Selector}, d={Domain})", envelope.Id, key.Selector, key.Domain);
        return Concat(signed[..^2], header);
    }

    private string ReceivedValue(IncomingEnvelope e)
    {
        var forClause = e.Recipients.Count == 1 ? $"\r\n\tfor <{e.Recipients[0]}>" : "";
        var by = e.ReceivedBy ?? _options.MyHostname;
        var tls = e.Tls is null ? "" : $"\r\n\t(using {e.Tls})";
        // RFC 5321's address literal: an IPv6 address carries its tag (Postfix writes [IPv6:2001:db8::1] too).
        var literal = e.ClientAddress.Contains(':') ? "IPv6:" + e.ClientAddress : e.ClientAddress;
        return $"from {e.Helo} ([{literal}]){tls}\r\n\tby {by} (Mta) with {e.Protocol} id {e.Id}{forClause};\r\n\t"
            + DateUtils.FormatDate(e.ArrivalTime);
    }

    private static byte[] Write(IEnumerable<Header> headers)
    {
        var list = new HeaderList();
        foreach (var h in headers) list.Add(h);
        using var buffer = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        list.WriteTo(format, buffer);
        return buffer.ToArray();
    }

    /// <summary>A raw header value cut to <paramref name="limit"/> bytes, still ending in CRLF.</summary>
    private static byte[] Cut(byte[] raw, int limit)
    {
        var end = limit;
        while (end > 0 && raw[end - 1] is (byte)'\r' or (byte)'\n') end--;
        return Concat(raw.AsSpan(0, end).ToArray(), "\r\n"u8);
    }

    private static byte[] Concat(byte[] first, ReadOnlySpan<byte> second)
    {
        var all = new byte[first.Length + second.Length];
        first.CopyTo(all, 0);
        second.CopyTo(all.AsSpan(first.Length));
        return all;
    }

    /// <summary>
    /// The first <see cref="UntrustedMime.HeaderBlockLimit"/> octets of a spooled message in a rented buffer (the
    /// caller returns it), and whether there are more.
    /// </summary>
    private async Task<(byte[] Rented, ArraySegment<byte> Start, bool More)> ReadStartAsync(string blobName, CancellationToken ct)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(UntrustedMime.HeaderBlockLimit + 1);
        try
        {
            await using var stream = await _spool.Spool.OpenReadAsync(blobName, ct);
            var length = await stream.ReadAtLeastAsync(buffer.AsMemory(0, UntrustedMime.HeaderBlockLimit + 1), UntrustedMime.HeaderBlockLimit + 1,
                throwOnEndOfStream: false, ct);
            return (buffer, new ArraySegment<byte>(buffer, 0, length), length > UntrustedMime.HeaderBlockLimit);
        }
        catch
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>The header block, or none when the message does not start with one; an over-large one is refused.</summary>
    private static ParsedHeader ParseHeader(IncomingEnvelope envelope, ArraySegment<byte> start, bool more)
    {
        try
        {
            var (headers, offset) = UntrustedMime.ParseHeader(start, more);
            return new ParsedHeader(headers, offset, true);
        }
        catch (FormatException)
        {
            // Not a header at all (e.g. an mbox "From " line first): deliver the bytes as they came, Received on top.
            return new ParsedHeader(new HeaderList(), 0, false);
        }
        catch (HeaderTooLargeException e)
        {
            // The ingress refuses such a message before its 250; one that got here anyway is left to the operator.
            throw new InvalidQueueMessageException($"{envelope.Id}: {e.Message}: not parsed", e);
        }
    }

    private static void Validate(IncomingEnvelope e)
    {
        if (string.IsNullOrWhiteSpace(e.Id) || string.IsNullOrWhiteSpace(e.BlobName))
            throw new InvalidQueueMessageException("envelope without id or blob name");
        QueueIds.Require("envelope", e.Id, e.BlobName);
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

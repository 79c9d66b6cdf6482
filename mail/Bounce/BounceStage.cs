using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Cleanup;
using MimeKit.Utils;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Mta.Mail.Metrics;
using Mta.Mail.Queues;
using Mta.Mail.Routing;
using Mta.Mail.Spool;

namespace Mta.Mail.Bounce;

/// <summary>
/// Postfix's bounce(8): turns permanently failed recipients into a delivery status notification
/// (RFC 3464, built with MimeKit) sent from the null sender back to the envelope sender, and put
/// through the normal delivery path. A message from the null sender is never bounced (RFC 5321 §4.5.5):
/// its failure is logged and dropped, as Postfix does by default (notify_classes without 2bounce).
/// </summary>
public sealed class BounceStage(
    SpoolLifetime spool,
    MailQueues queues,
    Router router,
    IOptions<MtaOptions> options,
    TimeProvider clock,
    ILogger<BounceStage> log,
    PipelineMetrics? metrics = null,
    Feedback.BounceDomains? bounceDomains = null)
{
    /// <summary>Postfix <c>bounce_size_limit</c>: larger originals are returned as headers only.</summary>
    public const int BounceSizeLimit = 50_000;

    private readonly MtaOptions _options = options.Value;
    private readonly Feedback.BounceDomains _returns = bounceDomains ?? Feedback.BounceDomains.None;

    /// <summary>Processes one job from the <c>bounce</c> queue.</summary>
    public async Task ProcessAsync(ReportJob job, CancellationToken ct = default)
    {
        if (job.Recipients is not { Count: > 0 } || string.IsNullOrEmpty(job.BlobName))
            throw new InvalidQueueMessageException($"{job.MessageId}: bounce job without recipients or blob");
        QueueIds.Require("bounce job", job.MessageId, job.BlobName);
        if (job.Reference is not null) QueueIds.Require("bounce job", job.Reference);

        await ReportAsync(job, ct);
        // The report no longer needs the original: give up its hold on a spooled message.
        await spool.ReleaseAsync(job, ct);
    }

    private async Task ReportAsync(ReportJob job, CancellationToken ct)
    {
        var addressee = Addressee(job);
        if (job.Sender.Length == 0)
            foreach (var r in job.Recipients)
                log.LogWarning("{QueueId}: undeliverable bounce {Fate}: to=<{Recipient}> ({Reason})",
                    job.MessageId, addressee is not null ? "sent to the postmaster" : "discarded", r.Recipient, r.Reason);
        if (addressee is null) return;
        if (_returns.Contains(addressee))
        {
            // A VERP return path in a bounce domain: the report would only come back here to be read, and the Bounce
            // event and the suppression list already have what it would say.
            log.LogInformation("{QueueId}: sender non-delivery notification not sent: to=<{Addressee}> is in a bounce domain", job.MessageId, addressee);
            return;
        }
        if (await ReadOriginalAsync(job, ct) is not { } original) return;

        var dsn = BuildNotification(job, original, clock.GetUtcNow(), addressee);
        using var bytes = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        await dsn.WriteToAsync(format, bytes, ct);

        var id = ReportId(job);
        await QueueReportAsync(id, addressee, job.Sender.Length == 0, bytes, ct);
        log.LogInformation("{QueueId}: sender non-delivery notification: {BounceId}", job.MessageId, id);
        foreach (var action in job.Recipients.GroupBy(r => r.Action))
            metrics?.Report(action.Key.Keyword(), action.Count());
    }

    /// <summary>
    /// Who gets the report: the sender; for the null sender nobody (RFC 5321 §4.5.5: Postfix drops it), or with
    /// 2bounce notices on the postmaster, once (never for a postmaster's copy that failed in turn).
    /// </summary>
    private string? Addressee(ReportJob job)
    {
        if (job.Sender.Length > 0) return job.Sender;
        if (!_options.NotifyDoubleBounce || job.DoubleBounce) return null;
        return _options.DoubleBounceRecipient.Contains('@')
            ? _options.DoubleBounceRecipient
            : _options.DoubleBounceRecipient + "@" + _options.LocalDomains[0];
    }

    /// <summary>The original message; null when its blob is gone because this report was made before.</summary>
    private async Task<byte[]?> ReadOriginalAsync(ReportJob job, CancellationToken ct)
    {
        try
        {
            return await MessageContent.Of(job).ReadStoredAsync(spool.Spool, ct);
        }
        catch (Azure.RequestFailedException e) when (e.Status == 404 && job.Reference is not null)
        {
            // A spooled original goes only when no reference is left, so this report was made before (its job came back).
            if (!await spool.ReportMadeBeforeAsync(job.MessageId, job.Reference, ct)) throw;
            log.LogInformation("{QueueId}: report {Reference} was made before: not made again", job.MessageId, job.Reference);
            return null;
        }
    }

    /// <summary>The report's queue id: named after the original and the report's own reference, so a retried job makes the same report.</summary>
    private static string ReportId(ReportJob job)
        => job.MessageId + "B" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(
            Encoding.UTF8.GetBytes(job.Reference ?? string.Join(',', job.Recipients.Select(r => r.Recipient + r.Action.Keyword())))).AsSpan(0, 3));

    /// <summary>Puts the report through the normal delivery path, from the null sender (a bounce is never bounced).</summary>
    private async Task QueueReportAsync(string id, string addressee, bool postmasterCopy, MemoryStream bytes, CancellationToken ct)
    {
        foreach (var (hop, recipients) in router.Group([addressee], _options.DestinationRecipientLimit))
        {
            var delivery = new DeliveryJob
            {
                MessageId = id,
                JobId = id + ".0",
                BlobName = id,
                Sender = "",
                Recipients = recipients,
                NextHop = hop,
                ArrivalTime = clock.GetUtcNow(),
                DoubleBounce = postmasterCopy,
                Content = bytes.ToArray(),
                Size = bytes.Length,
            };
            if (await queues.TrySendAsync(QueueNames.Delivery, delivery, ct) is not null) continue;
            // Too large to travel inline (it quotes up to bounce_size_limit of the original): spool it, with its own references.
            bytes.Position = 0;
            await spool.SpoolAsync(id, id, bytes, holders: [delivery.JobId], ct);
            await queues.SendAsync(QueueNames.Delivery, delivery with { Content = null }, ct);
        }
    }

    /// <summary>What a report is about, which decides its subject, its explanation and how much of the original it returns.</summary>
    private enum ReportKind { Failure, Success, Delay }

    private static ReportKind KindOf(ReportJob job)
        => job.Recipients.All(r => r.Action.IsSuccess()) ? ReportKind.Success
         : job.Recipients.All(r => r.Action == DsnAction.Delayed) ? ReportKind.Delay
         : ReportKind.Failure;

    /// <summary>The RFC 3464 report: explanation, delivery-status, and the original (or its header).</summary>
    internal MimeMessage BuildNotification(ReportJob job, byte[] original, DateTimeOffset now, string? recipient = null)
    {
        var kind = KindOf(job);
        var host = _options.MyHostname;
        var giveUp = RetryPolicy.GiveUpTime(job.ArrivalTime, _options);
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery System", "MAILER-DAEMON@" + host));
        message.To.Add(MailboxAddress.Parse(recipient ?? job.Sender));
        message.Subject = job.Sender.Length == 0 ? "Postmaster Copy: Undelivered Mail" : kind switch
        {
            ReportKind.Success => "Successful Mail Delivery Report",
            ReportKind.Delay => "Delayed Mail (still being retried)",
            _ => "Undelivered Mail Returned to Sender",
        };
        message.Date = now;
        message.MessageId = MimeUtils.GenerateMessageId(host);
        message.Headers.Add("Auto-Submitted", "auto-replied");
        message.Body = new MultipartReport("delivery-status")
        {
            new TextPart("plain") { Text = Explanation(job, kind, now, giveUp) },
            DeliveryStatus(job, now, giveUp),
            // RET=HDRS asks for the header only; success and delay reports return the header only too (RFC 3461 §4.3).
            original.Length <= BounceSizeLimit && job.Dsn?.Ret != "HDRS" && kind == ReportKind.Failure ? Whole(original) : HeaderOnly(original),
        };
        return message;
    }

    private string Explanation(ReportJob job, ReportKind kind, DateTimeOffset now, DateTimeOffset giveUp)
    {
        var explanation = new StringBuilder()
            .AppendLine($"This is the mail system at host {_options.MyHostname}.")
            .AppendLine();
        if (kind == ReportKind.Success)
            explanation.AppendLine("Your message was successfully delivered to the destination(s) listed below.");
        else if (kind == ReportKind.Delay)
            explanation.AppendLine("Your message could not be delivered for more than " + Duration(now - job.ArrivalTime) + ".")
                .AppendLine("It will be retried until it is " + Duration(giveUp - job.ArrivalTime) + " old.")
                .AppendLine()
                .AppendLine("This is a warning only. You do not need to resend your message.");
        else
            explanation.AppendLine("I'm sorry to have to inform you that your message could not")
                .AppendLine("be delivered to one or more recipients. It's attached below.");
        explanation.AppendLine();
        foreach (var r in job.Recipients)
            explanation.AppendLine($"<{r.Recipient}>: {r.Reason}");
        return explanation.ToString();
    }

    /// <summary>The machine-readable part: one per-message group, then one group per recipient.</summary>
    private MessageDeliveryStatus DeliveryStatus(ReportJob job, DateTimeOffset now, DateTimeOffset giveUp)
    {
        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList
        {
            { "Reporting-MTA", "dns; " + _options.MyHostname },
            { "X-Mta-Queue-ID", job.MessageId },
            { "X-Mta-Sender", "rfc822; " + job.Sender },
            { "Arrival-Date", DateUtils.FormatDate(job.ArrivalTime) },
        };
        if (job.Dsn?.EnvelopeId is { } envid) perMessage.Insert(0, new Header("Original-Envelope-Id", envid));
        status.StatusGroups.Add(perMessage);
        foreach (var r in job.Recipients)
        {
            var group = new HeaderList { { "Final-Recipient", "rfc822; " + r.Recipient } };
            if (job.Dsn?.Recipients.GetValueOrDefault(r.Recipient)?.OriginalRecipient is { } orcpt)
                group.Add("Original-Recipient", orcpt);
            group.Add("Action", r.Action.Keyword());
            group.Add("Status", StatusCode(r.Reason, r.Action));
            if (r.RemoteMta is not null) group.Add("Remote-MTA", "dns; " + r.RemoteMta);
            group.Add("Diagnostic-Code", "smtp; " + r.Reason);
            group.Add("Last-Attempt-Date", DateUtils.FormatDate(now));
            if (r.Action == DsnAction.Delayed) group.Add("Will-Retry-Until", DateUtils.FormatDate(giveUp));
            status.StatusGroups.Add(group);
        }
        return status;
    }

    private static MessagePart Whole(byte[] original)
        => new() { Message = MimeMessage.Load(UntrustedMime.Options, new MemoryStream(original)) };

    /// <summary>The original's header only, as text/rfc822-headers (RFC 6522), read from at most its first 256 KiB.</summary>
    private static TextRfc822Headers HeaderOnly(byte[] original)
    {
        var headerOnly = new MimeMessage();
        headerOnly.Headers.Clear();
        var window = new MemoryStream(original, 0, Math.Min(original.Length, UntrustedMime.HeaderBlockLimit), writable: false);
        foreach (var h in HeaderList.Load(UntrustedMime.Options, window)) headerOnly.Headers.Add(h);
        return new TextRfc822Headers { Message = headerOnly };
    }

    /// <summary>
    /// The enhanced status code in a reason (<c>550 5.1.1 ...</c> or <c>5.1.2 ...</c>): a failure reported
    /// here is permanent (class 5), a delay temporary (class 4), a success class 2; without a code, x.0.0.
    /// </summary>
    internal static string StatusCode(string reason, DsnAction action = DsnAction.Failed)
        => EnhancedStatus.For(action switch
        {
            DsnAction.Delivered or DsnAction.Relayed => RecipientStatus.Delivered,
            DsnAction.Delayed => RecipientStatus.Deferred,
            _ => RecipientStatus.Bounced,
        }, reason);

    /// <summary>A duration in words as Postfix's notices give it: "4 hours", "5 days", "30 seconds".</summary>
    private static string Duration(TimeSpan t)
        => t.TotalDays >= 1 ? Plural((int)t.TotalDays, "day")
         : t.TotalHours >= 1 ? Plural((int)t.TotalHours, "hour")
         : t.TotalMinutes >= 1 ? Plural((int)t.TotalMinutes, "minute")
         : Plural((int)t.TotalSeconds, "second");

    private static string Plural(int n, string unit) => n == 1 ? $"1 {unit}" : $"{n} {unit}s";
}

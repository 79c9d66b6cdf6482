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
using Mta.Mail.Tracking;

namespace Mta.Mail.Bounce;

/// <summary>
/// Postfix's bounce(8): turns permanently failed recipients into a delivery status notification
/// (RFC 3464, built with MimeKit) sent from the null sender back to the envelope sender, and put
/// through the normal delivery path. A message from the null sender is never bounced (RFC 5321 §4.5.5):
/// its failure is logged and dropped, as Postfix does by default (notify_classes without 2bounce).
/// </summary>
public sealed class BounceStage(
    MessageSpool spool,
    MailQueues queues,
    Router router,
    SpoolReferences references,
    IOptions<MtaOptions> options,
    TimeProvider clock,
    ILogger<BounceStage> log,
    PipelineMetrics? metrics = null)
{
    /// <summary>Postfix <c>bounce_size_limit</c>: larger originals are returned as headers only.</summary>
    public const int BounceSizeLimit = 50_000;

    private readonly MtaOptions _options = options.Value;

    /// <summary>Processes one job from the <c>bounce</c> queue.</summary>
    public async Task ProcessAsync(ReportJob job, CancellationToken ct = default)
    {
        if (job.Recipients is not { Count: > 0 } || string.IsNullOrEmpty(job.BlobName))
            throw new InvalidQueueMessageException($"{job.MessageId}: bounce job without recipients or blob");
        QueueIds.Require("bounce job", job.MessageId, job.BlobName);
        if (job.Reference is not null) QueueIds.Require("bounce job", job.Reference);

        await ReportAsync(job, ct);
        // The report no longer needs the original: give up its hold on a spooled message.
        if (job.Reference is not null && await references.UpdateAsync(job.MessageId, [], [job.Reference], ct))
            await DeliveryStage.DeleteSpooledAsync(spool, job.MessageId, job.BlobName, ct);
    }

    private async Task ReportAsync(ReportJob job, CancellationToken ct)
    {
        var recipient = job.Sender;
        if (job.Sender.Length == 0)
        {
            // RFC 5321 §4.5.5: never a report to the null sender. Postfix drops it, or (2bounce) tells the postmaster once.
            var copy = _options.NotifyDoubleBounce && !job.DoubleBounce;
            foreach (var r in job.Recipients)
                log.LogWarning("{QueueId}: undeliverable bounce {Fate}: to=<{Recipient}> ({Reason})",
                    job.MessageId, copy ? "sent to the postmaster" : "discarded", r.Recipient, r.Reason);
            if (!copy) return;
            recipient = _options.DoubleBounceRecipient.Contains('@')
                ? _options.DoubleBounceRecipient
                : _options.DoubleBounceRecipient + "@" + _options.LocalDomains[0];
        }

        byte[] original;
        try
        {
            original = job.Content ?? await spool.ReadAsync(job.BlobName, ct);
        }
        catch (Azure.RequestFailedException e) when (e.Status == 404 && job.Reference is not null)
        {
            // A spooled original goes only when no reference is left, so this report was made before (its job came back).
            if ((await references.OpenReferencesAsync(job.MessageId, ct))?.Contains(job.Reference) == true) throw;
            log.LogInformation("{QueueId}: report {Reference} was made before: not made again", job.MessageId, job.Reference);
            return;
        }
        var dsn = BuildNotification(job, original, clock.GetUtcNow(), recipient);
        using var bytes = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        await dsn.WriteToAsync(format, bytes, ct);

        // Named after the original and the report's own reference, so a retried bounce job makes the same report.
        var id = job.MessageId + "B" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(
            Encoding.UTF8.GetBytes(job.Reference ?? string.Join(',', job.Recipients.Select(r => r.Recipient + r.Action.Keyword())))).AsSpan(0, 3));
        foreach (var (hop, recipients) in router.Group([recipient], _options.DestinationRecipientLimit))
        {
            var delivery = new DeliveryJob
            {
                MessageId = id,
                JobId = id + ".0",
                BlobName = id,
                Sender = "", // the null reverse-path: a bounce is never bounced
                Recipients = recipients,
                NextHop = hop,
                ArrivalTime = clock.GetUtcNow(),
                DoubleBounce = job.Sender.Length == 0,
                Content = bytes.ToArray(),
                Size = bytes.Length,
            };
            if (await queues.TrySendAsync(QueueNames.Delivery, delivery, ct) is not null) continue;
            // Too large to travel inline (it quotes up to bounce_size_limit of the original): spool it, with its own references.
            await references.OpenAsync(id, [delivery.JobId], ct);
            bytes.Position = 0;
            try { await spool.WriteAsync(id, bytes, ct); }
            catch (Azure.RequestFailedException e) when (e.Status == 409) { /* written by an earlier run of this job */ }
            await queues.SendAsync(QueueNames.Delivery, delivery with { Content = null }, ct);
        }
        log.LogInformation("{QueueId}: sender non-delivery notification: {BounceId}", job.MessageId, id);
        foreach (var action in job.Recipients.GroupBy(r => r.Action))
            metrics?.Report(action.Key.Keyword(), action.Count());
    }

    /// <summary>The RFC 3464 report: explanation, delivery-status, and the original (or its header).</summary>
    internal MimeMessage BuildNotification(ReportJob job, byte[] original, DateTimeOffset now, string? recipient = null)
    {
        var postmasterCopy = job.Sender.Length == 0;
        var host = _options.MyHostname;
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery System", "MAILER-DAEMON@" + host));
        message.To.Add(MailboxAddress.Parse(recipient ?? job.Sender));
        var allDelivered = job.Recipients.All(r => r.Action.IsSuccess());
        var allDelayed = job.Recipients.All(r => r.Action == DsnAction.Delayed);
        message.Subject = postmasterCopy ? "Postmaster Copy: Undelivered Mail"
            : allDelivered ? "Successful Mail Delivery Report"
            : allDelayed ? "Delayed Mail (still being retried)"
            : "Undelivered Mail Returned to Sender";
        message.Date = now;
        message.MessageId = MimeUtils.GenerateMessageId(host);
        message.Headers.Add("Auto-Submitted", "auto-replied");

        var explanation = new StringBuilder()
            .AppendLine($"This is the mail system at host {host}.")
            .AppendLine();
        var giveUp = RetryPolicy.GiveUpTime(job.ArrivalTime, _options);
        if (allDelivered)
            explanation.AppendLine("Your message was successfully delivered to the destination(s) listed below.");
        else if (allDelayed)
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

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList
        {
            { "Reporting-MTA", "dns; " + host },
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

        var report = new MultipartReport("delivery-status")
        {
            new TextPart("plain") { Text = explanation.ToString() },
            status,
        };
        // RET=HDRS asks for the header only; success and delay reports return the header only too (RFC 3461 §4.3).
        if (original.Length <= BounceSizeLimit && job.Dsn?.Ret != "HDRS" && !allDelivered && !allDelayed)
        {
            report.Add(new MessagePart { Message = MimeMessage.Load(UntrustedMime.Options, new MemoryStream(original)) });
        }
        else
        {
            // Too large to return whole: the header only, as text/rfc822-headers (RFC 6522).
            var headerOnly = new MimeMessage();
            headerOnly.Headers.Clear();
            // From at most the first 256 KiB: the header block, however large the message.
            var window = new MemoryStream(original, 0, Math.Min(original.Length, UntrustedMime.HeaderBlockLimit), writable: false);
            foreach (var h in HeaderList.Load(UntrustedMime.Options, window)) headerOnly.Headers.Add(h);
            report.Add(new TextRfc822Headers { Message = headerOnly });
        }
        message.Body = report;
        return message;
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

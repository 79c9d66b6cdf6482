using System.Text;
using Microsoft.Extensions.Logging;
using MimeKit;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;

namespace Mta.Mail.Delivery;

/// <summary>
/// Delivers one job: the message (cleanup's added headers, then the stored bytes) to its next hop.
/// Delivered recipients are done; deferred ones are parked on the <c>deferred</c> queue as a new job
/// that becomes visible after a backoff (so no worker waits, and no replica is scaled for it);
/// bounced ones go to the bounce queue. Nothing is dropped.
/// </summary>
public sealed class DeliveryStage(
    MessageSpool spool,
    MailQueues queues,
    SmtpDelivery smtp,
    MaildirDelivery maildir,
    LmtpDelivery lmtp,
    RetryPolicy retries,
    TimeProvider clock,
    ILogger<DeliveryStage> log)
{
    /// <summary>Processes one job from the <c>delivery</c> queue.</summary>
    public async Task ProcessAsync(DeliveryJob job, CancellationToken ct = default)
    {
        if (string.IsNullOrEmpty(job.BlobName) || job.Recipients is not { Count: > 0 } || job.NextHop is null)
            throw new InvalidQueueMessageException($"{job.MessageId}: delivery job without blob, recipients or next hop");

        var stored = await spool.ReadAsync(job.BlobName, ct);
        var bytes = Concat(Encoding.UTF8.GetBytes(job.HeaderPrefix), stored.ToMemory());

        IReadOnlyList<RecipientResult> results;
        if (job.NextHop.Transport == Transport.Local)
        {
            results = await maildir.DeliverAsync(job.MessageId, job.Sender, job.Recipients, bytes, ct);
        }
        else if (job.NextHop.Transport == Transport.Lmtp)
        {
            results = await lmtp.DeliverAsync(job.NextHop, job.Sender, job.Recipients, bytes, ct);
        }
        else
        {
            using var stream = new MemoryStream(bytes, writable: false);
            var message = await MimeMessage.LoadAsync(stream, ct);
            results = await smtp.DeliverAsync(job, message, ct);
        }

        var now = clock.GetUtcNow();
        var expired = retries.Expired(job.ArrivalTime, now);
        foreach (var r in results)
            LogResult(job, r, now, expired);

        var deferred = results.Where(r => r.Status == RecipientStatus.Deferred).Select(r => r.Recipient).ToList();
        // Reports the sender asked for (RFC 3461 NOTIFY; FAILURE by default): failures, and successes on NOTIFY=SUCCESS.
        var failed = results.Where(r => r.Status == RecipientStatus.Bounced || r.Status == RecipientStatus.Deferred && expired);
        var succeeded = results.Where(r => r.Status == RecipientStatus.Delivered);
        var reports = failed.Where(r => DsnRequest.Wants(job.Dsn, r.Recipient, "failed"))
            .Select(r => new FailedRecipient(r.Recipient, r.Detail, "failed", Remote(r.Relay)))
            .Concat(succeeded.Where(r => DsnRequest.Wants(job.Dsn, r.Recipient, "delivered"))
                .Select(r => new FailedRecipient(r.Recipient, r.Detail, "delivered", Remote(r.Relay))))
            .ToList();

        if (reports.Count > 0)
        {
            await queues.SendAsync(QueueNames.Bounce, new BounceJob
            {
                MessageId = job.MessageId,
                BlobName = job.BlobName,
                Sender = job.Sender,
                ArrivalTime = job.ArrivalTime,
                Recipients = reports,
                Dsn = job.Dsn,
            }, ct);
        }
        if (deferred.Count > 0 && !expired)
        {
            var retry = job with { Recipients = deferred, Attempt = job.Attempt + 1 };
            await queues.SendAsync(QueueNames.Deferred, retry, ct, delay: retries.NextDelay(job.Attempt));
        }
    }

    /// <summary>The remote host's name from a relay such as <c>mx1.example.net[192.0.2.1]:25</c>; null when nothing remote answered.</summary>
    private static string? Remote(string relay)
    {
        if (relay is "none" or "local") return null;
        var bracket = relay.IndexOf('[');
        return bracket > 0 ? relay[..bracket] : relay;
    }

    private void LogResult(DeliveryJob job, RecipientResult r, DateTimeOffset now, bool expired)
    {
        var status = r.Status switch
        {
            RecipientStatus.Delivered => "sent",
            RecipientStatus.Deferred when expired => "expired",
            RecipientStatus.Deferred => "deferred",
            _ => "bounced",
        };
        // Postfix's line: "ID: to=<rcpt>, relay=..., delay=..., dsn=2.0.0, status=sent (reply)".
        var dsn = EnhancedStatus.For(r.Status == RecipientStatus.Deferred && expired ? RecipientStatus.Bounced : r.Status, r.Detail);
        log.LogInformation("{QueueId}: to=<{Recipient}>, relay={Relay}, delay={Delay:0.##}, dsn={Dsn}, status={Status} ({Detail})",
            job.MessageId, r.Recipient, r.Relay, (now - job.ArrivalTime).TotalSeconds, dsn, status, r.Detail);
    }

    private static byte[] Concat(byte[] prefix, ReadOnlyMemory<byte> body)
    {
        var all = new byte[prefix.Length + body.Length];
        prefix.CopyTo(all, 0);
        body.Span.CopyTo(all.AsSpan(prefix.Length));
        return all;
    }
}

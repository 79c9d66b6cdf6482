using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Classification;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Spool;

namespace Mta.Mail.Feedback;

/// <summary>
/// Mail to a bounce domain (<see cref="BounceDomains"/>), read instead of delivered: each failed recipient of a DSN
/// becomes an AsyncBounce event and each ARF report a Complaint (with events on), and the address goes on the tenant's
/// suppression list when its category suppresses (complaints under <c>complaint</c>). What is no report is dropped with
/// a log line. Cleanup calls this for the recipients in bounce domains; the message's other recipients go on as usual.
/// </summary>
public sealed class ReturnedMail(BounceDomains domains, IOptions<MtaOptions> options, MessageSpool spool, MailQueues queues,
    BounceClassifier classifier, Suppression.SuppressionList suppression, TimeProvider clock, ILogger<ReturnedMail> log)
{
    /// <summary>The bounce domains.</summary>
    public BounceDomains Domains => domains;

    /// <summary>Reads the message <paramref name="envelope"/> brought to the bounce-domain <paramref name="recipients"/>.</summary>
    public async Task ReadAsync(IncomingEnvelope envelope, IReadOnlyList<string> recipients, CancellationToken ct)
    {
        MimeMessage message;
        using (var bytes = await MessageContent.Of(envelope).ReadAsync(spool, ct))
            message = await MimeMessage.LoadAsync(new MemoryStream(bytes.Memory.ToArray(), writable: false), ct);
        foreach (var to in recipients)
        {
            var verp = VerpAddress.Decode(to, options.Value.VerpDelimiters);
            var notices = ReturnedReport.Read(message, verp?.Recipient);
            if (notices.Count == 0)
                log.LogInformation("{QueueId}: to=<{To}>, from=<{Sender}>, status=discarded (not a delivery status notification or feedback report)",
                    envelope.Id, to, envelope.Sender);
            foreach (var notice in notices)
                await TakeAsync(envelope, to, verp?.Owner ?? to, notice, ct);
        }
    }

    private async Task TakeAsync(IncomingEnvelope envelope, string to, string owner, ReturnedNotice notice, CancellationToken ct)
    {
        var category = notice.Kind == ReturnKind.Complaint ? "complaint" : classifier.Classify($"{notice.Status} {notice.Detail}").Name();
        var type = notice.Kind == ReturnKind.Complaint ? Events.MailEventTypes.Complaint : Events.MailEventTypes.AsyncBounce;
        var tenant = domains.TenantOf(to);
        log.LogInformation("{QueueId}: to=<{To}>, orig_to=<{Recipient}>, status=returned ({Type} {Status} {Category}: {Detail})",
            envelope.Id, to, notice.Recipient, type, notice.Status ?? "-", category, notice.Detail);
        if (options.Value.Events)
            await queues.TrySendEventAsync(Events.OutcomeEvents.Returned(envelope, type, owner, notice, category, tenant, clock.GetUtcNow()), ct);
        if (suppression.Enabled && suppression.Suppresses(category))
            await suppression.AddAsync(tenant, notice.Recipient, category, notice.Detail, ct);
    }
}

using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;

namespace Mta.Mail.Delivery;

/// <summary>
/// Postfix's smtp client role: sends one message to one next hop over SMTP with MailKit,
/// using the envelope (never the headers) for MAIL FROM and RCPT TO, and the stored bytes unchanged.
/// Tries each host in turn until one takes the transaction.
/// </summary>
public sealed class SmtpDelivery(MxResolver resolver, IOptions<MtaOptions> options, ILogger<SmtpDelivery> log)
{
    private readonly MtaOptions _options = options.Value;

    /// <summary>Delivers <paramref name="message"/> to every recipient of <paramref name="job"/>.</summary>
    public async Task<IReadOnlyList<RecipientResult>> DeliverAsync(DeliveryJob job, MimeMessage message, CancellationToken ct)
    {
        var hop = job.NextHop;
        IReadOnlyList<MailHost> hosts;
        try
        {
            hosts = hop.MxLookup ? await resolver.ResolveMxAsync(hop.Host, ct) : await resolver.ResolveHostAsync(hop.Host, ct);
        }
        catch (DnsLookupException e)
        {
            var status = e.Permanent ? RecipientStatus.Bounced : RecipientStatus.Deferred;
            var code = e.Permanent ? (e.Message.Contains("null MX") ? "5.1.10" : "5.1.2") : "4.4.3";
            return job.Recipients.Select(r => new RecipientResult(r, status, $"{code} {e.Message}", "none")).ToList();
        }

        var port = hop.Port ?? _options.SmtpPort;
        var lastError = "4.4.1 no host could be reached";
        var lastRelay = "none";
        foreach (var host in hosts)
        {
            var relay = $"{host.Name}[{host.Address}]:{port}";
            using var client = new EnvelopeSmtpClient { LocalDomain = _options.MyHostname, Timeout = _options.SmtpTimeoutSeconds * 1000 };
            // Opportunistic TLS (Postfix smtp_tls_security_level = may): encryption without authentication.
            client.ServerCertificateValidationCallback = (_, _, _, _) => true;
            try
            {
                await client.ConnectAsync(host.Address.ToString(), port, SecureSocketOptions.StartTlsWhenAvailable, ct);
            }
            catch (Exception e) when (e is SmtpCommandException or SmtpProtocolException or IOException or System.Net.Sockets.SocketException or SslHandshakeException or TimeoutException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                // Connection refused, 4xx/5xx greeting or TLS trouble: try the next host (RFC 5321 §5.1).
                lastError = $"4.4.1 connect to {relay}: {e.Message}";
                lastRelay = relay;
                log.LogInformation("{QueueId}: connect to {Relay}: {Error}", job.MessageId, relay, e.Message);
                continue;
            }

            var results = await client.TransactAsync(job, message, relay, ct);
            try { await client.DisconnectAsync(true, ct); } catch (Exception) { /* the transaction's outcome is already known */ }
            return results;
        }
        return job.Recipients.Select(r => new RecipientResult(r, RecipientStatus.Deferred, lastError, lastRelay)).ToList();
    }

    /// <summary>
    /// MailKit's client, adjusted to be an MTA's: keeps the message bytes exactly as stored
    /// (no re-encoding, no Bcc stripping) and reports each recipient's reply instead of throwing.
    /// </summary>
    private sealed class EnvelopeSmtpClient : SmtpClient
    {
        private readonly Dictionary<string, RecipientResult> _results = new(StringComparer.Ordinal);
        private string _relay = "";

        public async Task<IReadOnlyList<RecipientResult>> TransactAsync(DeliveryJob job, MimeMessage message, string relay, CancellationToken ct)
        {
            _relay = relay;
            _results.Clear();
            var format = FormatOptions.Default.Clone();
            format.HiddenHeaders.Clear();
            format.NewLineFormat = NewLineFormat.Dos;
            format.International = true;
            var sender = Mailbox(job.Sender);
            var recipients = job.Recipients.Select(Mailbox).ToList();
            try
            {
                var reply = await SendAsync(format, message, sender, recipients, ct);
                foreach (var r in job.Recipients.Where(r => !_results.ContainsKey(r)))
                    _results[r] = new RecipientResult(r, RecipientStatus.Delivered, reply, relay);
            }
            catch (SmtpCommandException e)
            {
                // MAIL FROM or DATA refused, or no recipient taken: every recipient without a reply of its own gets this one.
                Fill(job, e.StatusCode, e.Message);
            }
            catch (Exception e) when (e is SmtpProtocolException or IOException or ServiceNotConnectedException or TimeoutException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                // A drop mid-transaction is a deferral, never a loss, for everyone the server did not reject.
                foreach (var r in job.Recipients)
                    if (!_results.TryGetValue(r, out var got) || got.Status != RecipientStatus.Bounced)
                        _results[r] = new RecipientResult(r, RecipientStatus.Deferred, $"4.4.2 lost connection with {relay}: {e.Message}", relay);
            }
            return job.Recipients.Select(r => _results[r]).ToList();
        }

        private void Fill(DeliveryJob job, SmtpStatusCode code, string text)
        {
            var status = (int)code >= 500 ? RecipientStatus.Bounced : RecipientStatus.Deferred;
            foreach (var r in job.Recipients)
                if (!_results.TryGetValue(r, out var got) || got.Status == RecipientStatus.Delivered)
                    _results[r] = new RecipientResult(r, status, $"{(int)code} {text}", _relay);
        }

        private static MailboxAddress Mailbox(string address) => new("", address);

        protected override void Prepare(FormatOptions options, MimeMessage message, EncodingConstraint constraint, int maxLineLength)
        {
            // Deliberately nothing: the stored bytes are sent unchanged (DKIM signatures must survive).
        }

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            var status = (int)response.StatusCode >= 500 ? RecipientStatus.Bounced : RecipientStatus.Deferred;
            _results[mailbox.Address] = new RecipientResult(mailbox.Address, status, $"{(int)response.StatusCode} {response.Response}", _relay);
        }

        protected override void OnNoRecipientsAccepted(MimeMessage message)
        {
            // Each recipient already has its own reply; MailKit resets the transaction.
        }
    }
}

using MailKit;
using MailKit.Net.Smtp;
using MimeKit;
using Mta.Mail.Contracts;

namespace Mta.Mail.Delivery;

/// <summary>
/// MailKit's client, adjusted to be an MTA's: keeps the message bytes exactly as stored
/// (no re-encoding, no Bcc stripping), reports each recipient's reply instead of throwing,
/// and remembers enough about its connection to be reused for the next job to the same place.
/// </summary>
internal sealed class EnvelopeSmtpClient : SmtpClient
{
    private readonly Dictionary<string, RecipientResult> _results = new(StringComparer.Ordinal);
    private DsnRequest? _dsn;

    /// <summary>The peer as logged: <c>host[address]:port</c>.</summary>
    public string Relay { get; init; } = "";

    /// <summary>When the connection was made (Postfix <c>smtp_connection_reuse_time_limit</c> counts from here).</summary>
    public DateTimeOffset ConnectedAt { get; init; }

    /// <summary>Transactions sent over this connection so far.</summary>
    public int Uses { get; private set; }

    /// <summary>True once the connection failed mid-conversation: it must not be reused.</summary>
    public bool Broken { get; private set; }

    /// <summary>Sends one message to the job's recipients and gives each recipient's outcome.</summary>
    public async Task<IReadOnlyList<RecipientResult>> TransactAsync(DeliveryJob job, MimeMessage message, CancellationToken ct)
    {
        Uses++;
        _results.Clear();
        var utf8 = (Capabilities & SmtpCapabilities.UTF8) != 0 && (Capabilities & SmtpCapabilities.EightBitMime) != 0;
        if (job.SmtpUtf8 && !utf8 && NeedsSmtpUtf8(job, message))
        {
            // RFC 6531 §3.2: such a message cannot be downgraded here; Postfix bounces it with 5.6.7.
            return job.Recipients.Select(r => new RecipientResult(r, RecipientStatus.Bounced,
                $"5.6.7 SMTPUTF8 is required, but was not offered by host {Relay}", Relay)).ToList();
        }

        var format = FormatOptions.Default.Clone();
        format.HiddenHeaders.Clear();
        format.NewLineFormat = NewLineFormat.Dos;
        format.International = job.SmtpUtf8 && utf8; // MAIL FROM ... SMTPUTF8 only when the client asked for it
        var sender = Mailbox(job.Sender);
        var recipients = job.Recipients.Select(Mailbox).ToList();
        // RFC 3461 §4: DSN parameters travel on to a next hop that offers DSN.
        _dsn = job.Dsn;
        DeliveryStatusNotificationType = job.Dsn?.Ret switch
        {
            "FULL" => DeliveryStatusNotificationType.Full,
            "HDRS" => DeliveryStatusNotificationType.HeadersOnly,
            _ => DeliveryStatusNotificationType.Unspecified,
        };
        var passedOn = (Capabilities & SmtpCapabilities.Dsn) != 0;
        try
        {
            // MailKit gives the final reply's text; the log and DSNs show it with its code, as Postfix does.
            var reply = "250 " + await SendAsync(format, message, sender, recipients, ct);
            foreach (var r in job.Recipients.Where(r => !_results.ContainsKey(r)))
                _results[r] = new RecipientResult(r, RecipientStatus.Delivered, reply, Relay, Relayed: true, NotifyPassedOn: passedOn);
        }
        catch (SmtpCommandException e)
        {
            // MAIL FROM or DATA refused, or no recipient taken: every recipient without a reply of its own gets this one.
            Fill(job, e.StatusCode, e.Message);
        }
        catch (Exception e) when (e is SmtpProtocolException or IOException or ServiceNotConnectedException or TimeoutException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // A drop mid-transaction is a deferral, never a loss, for everyone the server did not reject.
            Broken = true;
            foreach (var r in job.Recipients)
                if (!_results.TryGetValue(r, out var got) || got.Status != RecipientStatus.Bounced)
                    _results[r] = new RecipientResult(r, RecipientStatus.Deferred, $"4.4.2 lost connection with {Relay}: {e.Message}", Relay);
        }
        return job.Recipients.Select(r => _results[r]).ToList();
    }

    /// <summary>
    /// Whether the message really needs SMTPUTF8: a non-ASCII envelope address or header
    /// (Postfix delivers an SMTPUTF8-flagged message that turns out to be ASCII to any server).
    /// </summary>
    private static bool NeedsSmtpUtf8(DeliveryJob job, MimeMessage message)
        => !Ascii(job.Sender) || job.Recipients.Any(r => !Ascii(r)) || message.Headers.Any(h => h.RawValue.Any(b => b > 127));

    private static bool Ascii(string s) => s.All(char.IsAscii);

    /// <summary>Checks that a cached connection still answers before it is used again.</summary>
    public async Task<bool> StillUsableAsync(CancellationToken ct)
    {
        if (Broken || !IsConnected) return false;
        try
        {
            await NoOpAsync(ct);
            return true;
        }
        catch (Exception e) when (e is SmtpCommandException or SmtpProtocolException or IOException or ServiceNotConnectedException or TimeoutException)
        {
            Broken = true;
            return false;
        }
    }

    private void Fill(DeliveryJob job, SmtpStatusCode code, string text)
    {
        var status = (int)code >= 500 ? RecipientStatus.Bounced : RecipientStatus.Deferred;
        foreach (var r in job.Recipients)
            if (!_results.TryGetValue(r, out var got) || got.Status == RecipientStatus.Delivered)
                _results[r] = new RecipientResult(r, status, $"{(int)code} {text}", Relay);
    }

    private static MailboxAddress Mailbox(string address) => new("", address);

    protected override string? GetEnvelopeId(MimeMessage message) => _dsn?.EnvelopeId;

    /// <remarks>
    /// MailKit then sends ORCPT as the RCPT address itself; an ORCPT the client gave that differs from it
    /// cannot be passed through MailKit (a known limit, see docs/configuration.md).
    /// </remarks>
    protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox)
    {
        var notify = _dsn?.Recipients.GetValueOrDefault(mailbox.Address)?.Notify;
        if (notify is null) return null;
        if (notify == "NEVER") return DeliveryStatusNotification.Never;
        var value = default(DeliveryStatusNotification);
        foreach (var item in notify.Split(','))
            value |= item switch
            {
                "SUCCESS" => DeliveryStatusNotification.Success,
                "FAILURE" => DeliveryStatusNotification.Failure,
                "DELAY" => DeliveryStatusNotification.Delay,
                _ => default,
            };
        return value;
    }

    protected override void Prepare(FormatOptions options, MimeMessage message, EncodingConstraint constraint, int maxLineLength)
    {
        // Deliberately nothing: the stored bytes are sent unchanged (DKIM signatures must survive).
    }

    protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
    {
        var status = (int)response.StatusCode >= 500 ? RecipientStatus.Bounced : RecipientStatus.Deferred;
        _results[mailbox.Address] = new RecipientResult(mailbox.Address, status, $"{(int)response.StatusCode} {response.Response}", Relay);
    }

    protected override void OnNoRecipientsAccepted(MimeMessage message)
    {
        // Each recipient already has its own reply; MailKit resets the transaction.
    }
}

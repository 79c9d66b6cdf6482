using System.Net;
using System.Net.Sockets;
using System.Text;
using MailKit.Net.Smtp;
using Microsoft.Extensions.Options;
using MimeKit.IO;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;

namespace Mta.Mail.Delivery;

/// <summary>
/// Postfix's lmtp client in its simplest form: LMTP (RFC 2033) to a mailbox server, which answers
/// DATA once per accepted recipient. MailKit has no LMTP (its EHLO is fixed), so this small client is
/// ours; dot-stuffing uses MailKit's <see cref="SmtpDataFilter"/>. Every outcome is per recipient.
/// </summary>
public sealed class LmtpDelivery(IOptions<MtaOptions> options)
{
    private readonly MtaOptions _options = options.Value;

    /// <summary>Delivers the message bytes to each recipient through the mailbox server at <paramref name="hop"/>.</summary>
    public async Task<IReadOnlyList<RecipientResult>> DeliverAsync(
        NextHop hop, string sender, IReadOnlyList<string> recipients, ReadOnlyMemory<byte> message, AttemptTimes times, CancellationToken ct)
    {
        var port = hop.Port ?? 24;
        var relay = $"{hop.Host}[{hop.Host}]:{port}";
        var results = new Dictionary<string, RecipientResult>(StringComparer.Ordinal);
        RecipientResult All(RecipientStatus status, string detail, string r) => new(r, status, detail, relay);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(_options.SmtpTimeoutSeconds * (4 + recipients.Count)));
        using var tcp = new TcpClient();
        try
        {
            var addresses = IPAddress.TryParse(hop.Host, out var ip) ? [ip] : await Dns.GetHostAddressesAsync(hop.Host, timeout.Token);
            await tcp.ConnectAsync(addresses, port, timeout.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return recipients.Select(r => All(RecipientStatus.Deferred, $"4.4.1 connect to {relay}: {e.Message}", r)).ToList();
        }

        var stream = tcp.GetStream();
        var reader = new StreamReader(stream, Encoding.UTF8, false, 4096, leaveOpen: true);
        async Task<(int Code, string Text)> Reply()
        {
            var text = new StringBuilder();
            while (true)
            {
                var line = await reader.ReadLineAsync(timeout.Token) ?? throw new IOException("connection closed");
                text.Append(text.Length > 0 ? " " : "").Append(line.Length > 4 ? line[4..] : "");
                if (line.Length < 4 || line[3] != '-')
                    return (int.TryParse(line.AsSpan(0, Math.Min(3, line.Length)), out var code) ? code : 0, $"{line[..Math.Min(3, line.Length)]} {text}");
            }
        }
        async Task<(int Code, string Text)> Command(string line)
        {
            await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), timeout.Token);
            return await Reply();
        }
        static RecipientStatus Status(int code) => code is >= 200 and < 300 ? RecipientStatus.Delivered
            : code >= 500 ? RecipientStatus.Bounced : RecipientStatus.Deferred;

        try
        {
            var greeting = await Reply();
            var hello = greeting.Code == 220 ? await Command("LHLO " + _options.MyHostname) : greeting;
            times.Connected();
            var mail = hello.Code == 250 ? await Command($"MAIL FROM:<{sender}>") : hello;
            if (mail.Code != 250)
                return recipients.Select(r => All(Status(mail.Code) == RecipientStatus.Delivered ? RecipientStatus.Deferred : Status(mail.Code), mail.Text, r)).ToList();

            var accepted = new List<string>();
            foreach (var r in recipients)
            {
                var rcpt = await Command($"RCPT TO:<{r}>");
                if (rcpt.Code is >= 200 and < 300) accepted.Add(r);
                else results[r] = All(Status(rcpt.Code), rcpt.Text, r);
            }
            if (accepted.Count == 0)
            {
                await Command("QUIT");
                return recipients.Select(r => results[r]).ToList();
            }

            var data = await Command("DATA");
            if (data.Code != 354)
            {
                foreach (var r in accepted) results[r] = All(Status(data.Code) == RecipientStatus.Delivered ? RecipientStatus.Deferred : Status(data.Code), data.Text, r);
                return recipients.Select(r => results[r]).ToList();
            }
            using (var filtered = new FilteredStream(stream))
            {
                filtered.Add(new SmtpDataFilter());
                await filtered.WriteAsync(message, timeout.Token);
                await filtered.FlushAsync(timeout.Token);
            }
            if (message.Length > 0 && message.Span[^1] != (byte)'\n')
                await stream.WriteAsync("\r\n"u8.ToArray(), timeout.Token);
            await stream.WriteAsync(".\r\n"u8.ToArray(), timeout.Token);
            // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
            foreach (var r in accepted)
            {
                var reply = await Reply();
                results[r] = All(Status(reply.Code), reply.Text, r);
            }
            try { await Command("QUIT"); } catch (IOException) { /* outcomes are known */ }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // A drop before a recipient's reply is a deferral for that recipient, never a loss.
            foreach (var r in recipients.Where(r => !results.ContainsKey(r)))
                results[r] = All(RecipientStatus.Deferred, $"4.4.2 lost connection with {relay}: {e.Message}", r);
        }
        return recipients.Select(r => results[r]).ToList();
    }
}

using MailKit.Net.Smtp;
using MimeKit;

namespace Mta.Tests.Peers;

/// <summary>Small messages sent with MailKit, the real SMTP client most tests use.</summary>
public static class TestMail
{
    /// <summary>A text message.</summary>
    public static MimeMessage Message(string from, string to, string subject, string? body = null)
    {
        var m = new MimeMessage();
        m.From.Add(MailboxAddress.Parse(from));
        m.To.Add(MailboxAddress.Parse(to));
        m.Subject = subject;
        m.Body = new TextPart("plain") { Text = body ?? subject };
        return m;
    }

    /// <summary>Sends over plain SMTP to the ingress; <paramref name="envelopeFrom"/> "" is the null sender. Returns the final reply.</summary>
    public static async Task<string> SendAsync(int port, MimeMessage message, string? envelopeFrom = null)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, MailKit.Security.SecureSocketOptions.None);
        var reply = envelopeFrom is null
            ? await client.SendAsync(message)
            : await client.SendAsync(message, new MailboxAddress("", envelopeFrom), message.To.Mailboxes);
        await client.DisconnectAsync(true);
        return reply;
    }
}

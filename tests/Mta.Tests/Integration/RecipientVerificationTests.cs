using System.Net;
using System.Net.Sockets;
using Azure.Storage.Queues;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Postfix's <c>reject_unverified_recipient</c>: the ingress asks a real Dovecot LMTP server (and relay domains' next
/// hops) whether an address exists before it answers RCPT, so mail for unknown users is refused, never bounced.
/// </summary>
public sealed class RecipientVerificationTests
{
    private static Dictionary<string, string?> Untrusted(DovecotLmtp dovecot, params (string Key, string Value)[] more)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mta:LocalTransport"] = $"lmtp:[127.0.0.1]:{dovecot.Port}",
            ["Ingress:VerifyRecipients"] = "true",
            ["Ingress:TrustedNetworks:0"] = "192.0.2.0/24", // the test client is a stranger
        };
        foreach (var (key, value) in more) settings[key] = value;
        return settings;
    }

    [SkippableFact]
    public async Task Unknown_mailbox_users_are_refused_at_rcpt_from_the_lmtp_servers_answer_which_is_remembered()
    {
        await using var dovecot = await DovecotLmtp.StartAsync("alice");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString,
            Untrusted(dovecot, ("Ingress:UnverifiedRecipientRejectCode", "550")), functions: false);
        var (smtp, _) = await RawSmtpClient.ConnectAsync(mta.SmtpPort);
        await using var _ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        Assert.StartsWith("250", await smtp.CommandAsync("MAIL FROM:<forged@victim.test>"));

        // Pipelined: each RCPT waits for its probe, and the replies keep their order.
        await smtp.WriteAsync("RCPT TO:<alice@localhost>\r\nRCPT TO:<ghost@localhost>\r\nRCPT TO:<Ghost@localhost>\r\n");
        Assert.StartsWith("250 2.1.5", await smtp.ReplyAsync());
        var refused = await smtp.ReplyAsync();
        Assert.StartsWith("550 5.1.1 <ghost@localhost>: Recipient address rejected: undeliverable address: host ", refused);
        Assert.Contains("said: 550 5.1.1", refused); // Dovecot's own answer, passed on
        Assert.StartsWith("550 5.1.1 <Ghost@localhost>", await smtp.ReplyAsync());
        // The second ask for ghost (in any case) came from memory: one probe each.
        Assert.Single(mta.Log.Matching("verify: <ghost@localhost>: Undeliverable"));
        Assert.Empty(mta.Log.Matching("verify: <Ghost@localhost>"));
        Assert.Single(mta.Log.Matching("verify: <alice@localhost>: Deliverable"));

        Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
        Assert.StartsWith("250", await smtp.CommandAsync("Subject: verified\r\n\r\nbody\r\n."));
        Assert.Equal(["alice@localhost"], await QueuedRecipientsAsync(azurite.ConnectionString));
        Assert.Empty(dovecot.Delivered("ghost"));
    }

    [SkippableFact]
    public async Task Without_an_answer_the_reply_is_a_450_and_trusted_clients_are_not_probed()
    {
        await using var dovecot = await DovecotLmtp.StartAsync("alice");
        await using var azurite = await Azurite.LeaseAsync();
        using var silent = new TcpListener(IPAddress.Loopback, 0); // accepts, never greets
        silent.Start();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map,
            $"down.test smtp:[127.0.0.1]:{TestEnvironment.FreeTcpPort()}\nslow.test smtp:[127.0.0.1]:{((IPEndPoint)silent.LocalEndpoint).Port}\n");
        var settings = Untrusted(dovecot, ("Mta:TransportMapFile", map), ("Ingress:RelayDomains:0", "down.test"),
            ("Ingress:RelayDomains:1", "slow.test"), ("Ingress:VerifyWaitSeconds", "1"));
        await using (var mta = await MtaSystem.StartAsync(azurite.ConnectionString, settings, functions: false))
        {
            var (smtp, _) = await RawSmtpClient.ConnectAsync(mta.SmtpPort);
            await using var _ = smtp;
            await smtp.CommandAsync("EHLO client.test");
            await smtp.CommandAsync("MAIL FROM:<a@sender.test>");
            // Postfix's default unverified_recipient_reject_code is 450: a refusal the sender's MTA may try again.
            Assert.StartsWith("450 4.1.1 <ghost@localhost>: Recipient address rejected: undeliverable address:", await smtp.CommandAsync("RCPT TO:<ghost@localhost>"));
            Assert.StartsWith("450 4.1.1 <x@down.test>: Recipient address rejected: unverified address: connect to",
                await smtp.CommandAsync("RCPT TO:<x@down.test>"));
            Assert.Equal("450 4.1.1 <x@slow.test>: Recipient address rejected: unverified address: Address verification in progress",
                (await smtp.CommandAsync("RCPT TO:<x@slow.test>")).TrimEnd());
            Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<alice@localhost>"));
        }

        // Postfix's order: permit_mynetworks before reject_unverified_recipient.
        settings.Remove("Ingress:TrustedNetworks:0");
        await using (var mta = await MtaSystem.StartAsync(azurite.ConnectionString, settings, functions: false))
        {
            var (smtp, _) = await RawSmtpClient.ConnectAsync(mta.SmtpPort);
            await using var _ = smtp;
            await smtp.CommandAsync("EHLO client.test");
            await smtp.CommandAsync("MAIL FROM:<a@sender.test>");
            Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<ghost@localhost>"));
            Assert.Empty(mta.Log.Matching("verify:"));
        }
    }

    /// <summary>Who the queued delivery jobs are for (cleanup runs in the ingress).</summary>
    private static async Task<List<string>> QueuedRecipientsAsync(string storage)
        => (await QueuePeek.DeliveryAsync(storage)).SelectMany(j => j.Recipients).ToList();
}

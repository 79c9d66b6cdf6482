using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MimeKit;
using MimeKit.Cryptography;
using Mta.Mail.Configuration;
using Mta.Mail.Dkim;
using Mta.Tests.Peers;
using Mta.Tests.Protocol;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The ingress with the filters people run, as Debian packages them, speaking milter on loopback: OpenDKIM signing
/// (its signature checked against its own key) and verifying a message the project's own DKIM signer signed; rspamd
/// refusing GTUBE and adding its headers to a clean message; clamav-milter refusing the EICAR test file; OpenDMARC
/// applying policies that dnsmasq serves.
/// </summary>
[RunsLong(15)] // rspamd takes about ten seconds to start
public sealed class MilterFilterTests
{
    private static async Task<byte[]> SendThroughAsync(string milter, string message)
    {
        await using var mta = await InMemoryIngress.StartAsync(new Dictionary<string, string?> { ["Ingress:Milters"] = milter });
        var (smtp, _) = await mta.ConnectAsync();
        await using var __ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        Assert.StartsWith("250 2.0.0", await TransactAsync(smtp, message));
        return Assert.Single(await mta.QueuedAsync()).Content!;
    }

    /// <summary>MAIL, RCPT and DATA accepted, then the message: the reply to it.</summary>
    private static async Task<string> TransactAsync(RawSmtpClient smtp, string message, string from = "a@sender.test")
    {
        Assert.StartsWith("250", await smtp.CommandAsync($"MAIL FROM:<{from}>"));
        Assert.StartsWith("250", await smtp.CommandAsync("RCPT TO:<u@rcpt.test>"));
        Assert.StartsWith("354", await smtp.CommandAsync("DATA"));
        await smtp.WriteAsync(message + ".\r\n");
        return await smtp.ReplyAsync();
    }

    private const string Plain = "From: A <a@sender.test>\r\nTo: u@rcpt.test\r\nSubject: signed by the filter\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
        + "Message-ID: <one@sender.test>\r\n\r\nA body line.\r\n  with  spaces  \r\n\r\n";

    [SkippableFact]
    public async Task OpenDkim_signs_what_is_queued_and_the_signature_verifies()
    {
        await using var dkim = await OpenDkim.SignerAsync("sender.test", "sel");
        var queued = await SendThroughAsync(dkim.Address, Plain);
        var message = MimeMessage.Load(new MemoryStream(queued));
        var index = message.Headers.IndexOf(HeaderId.DkimSignature);
        Assert.Equal(0, index); // OpenDKIM inserts its signature at the top
        Assert.Contains("d=sender.test", message.Headers[index].Value);
        var verifier = new DkimVerifier(new OneKey(dkim.PublicKey!));
        Assert.True(verifier.Verify(message, message.Headers[index]), "OpenDKIM's signature does not verify on what was queued");
    }

    [SkippableFact]
    public async Task OpenDkim_verifies_a_message_signed_by_our_own_signer_and_says_so_in_authentication_results()
    {
        var folder = TestEnvironment.TempFolder("dkim");
        using var rsa = RSA.Create(2048);
        await File.WriteAllTextAsync(Path.Combine(folder, "key.pem"), rsa.ExportPkcs8PrivateKeyPem());
        await File.WriteAllTextAsync(Path.Combine(folder, "table"), "sender.test ours key.pem\n");
        var signing = new DkimSigning(Options.Create(new MtaOptions { DkimSigningTable = Path.Combine(folder, "table") }), NullLogger<DkimSigning>.Instance);
        var signature = signing.Sign(signing.KeyFor("sender.test")!, new MemoryStream(Encoding.ASCII.GetBytes(Plain)));
        var signed = (signature.Field + ":" + Encoding.ASCII.GetString(signature.RawValue)).ReplaceLineEndings("\r\n") + Plain;

        var publicKey = Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo());
        await using var dkim = await OpenDkim.VerifierAsync(new Dictionary<string, string> { ["ours._domainkey.sender.test"] = $"v=DKIM1; k=rsa; p={publicKey}" });
        var queued = Encoding.ASCII.GetString(await SendThroughAsync(dkim.Address, signed));
        Assert.Matches(@"Authentication-Results: mta\.test;\s+dkim=pass", queued);

        var tampered = signed.Replace("A body line.", "A changed line.");
        queued = Encoding.ASCII.GetString(await SendThroughAsync(dkim.Address, tampered));
        Assert.Matches(@"Authentication-Results: mta\.test;\s+dkim=fail", queued);
    }

    [SkippableFact]
    public async Task Rspamd_rejects_gtube_and_adds_its_headers_to_a_clean_message()
    {
        var rspamd = await Rspamd.SharedAsync();
        await using var mta = await InMemoryIngress.StartAsync(new Dictionary<string, string?> { ["Ingress:Milters"] = rspamd.Address });
        var (smtp, _) = await mta.ConnectAsync();
        await using var __ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        var refused = await TransactAsync(smtp, Plain.Replace("A body line.", "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"));
        Assert.StartsWith("554 5.7.1", refused);
        Assert.Contains("Gtube pattern", refused); // rspamd names the GTUBE rule in its reply
        Assert.Empty(await mta.QueuedAsync());

        Assert.StartsWith("250 2.0.0", await TransactAsync(smtp, Plain));
        var queued = System.Text.Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!);
        Assert.Contains("X-Spamd-Result: default: False", queued);
        Assert.Contains("X-Spam-Status: No", queued);
    }

    [SkippableFact]
    public async Task ClamAv_refuses_the_eicar_test_file_and_marks_clean_mail_as_scanned()
    {
        await using var clamav = await ClamAvMilter.StartAsync();
        await using var mta = await InMemoryIngress.StartAsync(new Dictionary<string, string?> { ["Ingress:Milters"] = clamav.Address });
        var (smtp, _) = await mta.ConnectAsync();
        await using var __ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        var eicar = Convert.ToBase64String(@"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"u8);
        var refused = await TransactAsync(smtp, "From: a@sender.test\r\nSubject: an attachment\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            + "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\n"
            + "Content-Disposition: attachment; filename=eicar.com\r\nContent-Transfer-Encoding: base64\r\n\r\n" + eicar + "\r\n--b--\r\n");
        Assert.Matches(@"^550 5\.7\.1 Virus found: Eicar-Test-Signature\.UNOFFICIAL\r\n$", refused); // clamav-milter's RejectMsg, as its own reply code
        Assert.Empty(await mta.QueuedAsync());

        Assert.StartsWith("250 2.0.0", await TransactAsync(smtp, Plain));
        var queued = System.Text.Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!);
        Assert.Contains("X-Virus-Status: Clean", queued);
    }

    [SkippableFact]
    public async Task OpenDmarc_applies_a_reject_policy_served_by_dnsmasq_and_reports_a_none_policy()
    {
        // A kernel capability, not a tool: where a mount namespace cannot be made (a restricted container), say so and skip.
        var (namespaces, why) = await EndToEndTests.RunAsync("unshare", "-m", "true");
        Skip.If(namespaces != 0, "needs root with a mount namespace (unshare -m) and port 53: " + why.Trim());
        var address = $"127.53.{Random.Shared.Next(1, 255)}.{Random.Shared.Next(1, 255)}";
        await using var dns = await Dnsmasq.StartAtAsync(address, 53, "--txt-record=_dmarc.strict.test,v=DMARC1; p=reject",
            "--txt-record=_dmarc.lax.test,v=DMARC1; p=none");
        await using var dmarc = await OpenDmarc.StartAsync(address);
        await using var mta = await InMemoryIngress.StartAsync(new Dictionary<string, string?> { ["Ingress:Milters"] = dmarc.Address });
        var (smtp, _) = await mta.ConnectAsync();
        await using var __ = smtp;
        await smtp.CommandAsync("EHLO client.test");
        foreach (var domain in new[] { "strict.test", "lax.test" })
        {
            var reply = await TransactAsync(smtp, Plain.Replace("sender.test", domain), $"a@{domain}");
            if (domain == "strict.test") Assert.Equal("550 5.7.1 rejected by DMARC policy for strict.test\r\n", reply);
            else Assert.StartsWith("250 2.0.0", reply);
        }
        var queued = System.Text.Encoding.ASCII.GetString(Assert.Single(await mta.QueuedAsync()).Content!);
        Assert.Matches(@"Authentication-Results: mta\.test;\s+dmarc=fail \(p=none dis=none\) header\.from=lax\.test", queued);
    }

    /// <summary>The one public key a test knows, in place of DNS.</summary>
    private sealed class OneKey(string publicKey) : DkimPublicKeyLocatorBase
    {
        public override Org.BouncyCastle.Crypto.AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken ct = default)
            => GetPublicKey($"v=DKIM1; k=rsa; p={publicKey}");

        public override Task<Org.BouncyCastle.Crypto.AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken ct = default)
            => Task.FromResult(LocatePublicKey(methods, domain, selector, ct));
    }
}

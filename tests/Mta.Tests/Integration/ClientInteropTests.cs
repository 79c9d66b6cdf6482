using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The ingress with the SMTP clients mail really comes from: Postfix's own client relaying (PIPELINING,
/// STARTTLS), Postfix's smtp-source load generator, and Python's smtplib.
/// </summary>
public sealed class ClientInteropTests
{
    [SkippableFact]
    public async Task Postfix_relays_through_the_ingress_over_starttls_and_the_mail_is_delivered()
    {
        var folder = TestEnvironment.TempFolder("ingress-tls");
        TestCertificate.Write(Path.Combine(folder, "cert.pem"), Path.Combine(folder, "key.pem"), "mta.test");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:TlsCertificateFile"] = Path.Combine(folder, "cert.pem"),
            ["Ingress:TlsKeyFile"] = Path.Combine(folder, "key.pem"),
        });
        await using var postfix = await PostfixServer.StartAsync(relayHost: $"[127.0.0.1]:{mta.SmtpPort}");

        var subject = "via postfix " + Guid.NewGuid().ToString("N");
        await TestMail.SendAsync(postfix.Port, TestMail.Message("author@example.org", "user@localhost", subject));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("user").Length == 1), TimeSpan.FromSeconds(60)),
            postfix.Output);
        var delivered = await File.ReadAllTextAsync(mta.Maildir("user")[0]);
        Assert.Contains("Subject: " + subject, delivered);
        Assert.Matches(@"Received: from postfix\.test \(\[127\.0\.0\.1\]\)\s+\(using TLS[^)]*\)\s+by mta\.test \(Mta\) with ESMTPS id", delivered);
        Assert.Contains($"relay=127.0.0.1[127.0.0.1]:{mta.SmtpPort}", postfix.Output);
        Assert.Contains("status=sent (250 2.0.0 Ok: queued as", postfix.Output);
        Assert.Contains($"TLS connection established to 127.0.0.1[127.0.0.1]:{mta.SmtpPort}", postfix.Output);
    }

    [SkippableFact]
    public async Task Smtp_source_sessions_are_all_accepted_and_queued()
    {
        var source = TestEnvironment.RequireTool("smtp-source");
        await using var azurite = await Azurite.LeaseAsync();
        // Every message by the incoming queue, where one queue message is one accepted message to count.
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString,
            new Dictionary<string, string?> { ["Ingress:CleanupInline"] = "false" }, functions: false);
        var (exit, output) = await EndToEndTests.RunAsync(source, "-s", "5", "-m", "60", "-l", "2048", "-f", "load@sender.test",
            "-t", "user@localhost", $"127.0.0.1:{mta.SmtpPort}");
        Assert.True(exit == 0, output);
        var queue = new Azure.Storage.Queues.QueueClient(azurite.ConnectionString, Mta.Mail.Queues.QueueNames.Incoming);
        Assert.Equal(60, (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    [SkippableFact]
    public async Task Python_smtplib_sends_with_smtputf8_and_dsn()
    {
        var python = TestEnvironment.RequireTool("python3");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString);
        var script = $$"""
            import smtplib
            from email.message import EmailMessage
            m = EmailMessage()
            m["From"] = "jörg@localhost"
            m["To"] = "user@localhost"
            m["Subject"] = "smtplib grüße"
            m.set_content("from python")
            with smtplib.SMTP("127.0.0.1", {{mta.SmtpPort}}) as s:
                s.ehlo("python.test")
                assert s.has_extn("smtputf8") and s.has_extn("dsn") and s.has_extn("pipelining")
                s.send_message(m, mail_options=["SMTPUTF8"], rcpt_options=["NOTIFY=FAILURE"])  # smtplib adds a second SMTPUTF8
            print("sent")
            """;
        var (exit, output) = await EndToEndTests.RunAsync(python, "-c", script);
        Assert.True(exit == 0, output);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("user").Length == 1), TimeSpan.FromSeconds(60)));
        var delivered = await File.ReadAllTextAsync(mta.Maildir("user")[0]);
        Assert.Contains("Return-Path: <jörg@localhost>", delivered);
        Assert.Matches(@"with UTF8SMTP\s+id", delivered);
    }
}

using System.Diagnostics;
using System.Text;
using MailKit.Net.Smtp;
using MimeKit;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The whole path with real parts: a real SMTP client → ingress → Azurite → cleanup → delivery
/// → a real SMTP server (smtp-sink) found through a real DNS server (dnsmasq), or the local Maildir.
/// </summary>
public sealed class EndToEndTests
{
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(60);

    /// <summary>A body with what tends to break: leading dots, a lone dot, 8-bit text, a 998-octet line, trailing space.</summary>
    private static string TrickyMessage(string token) =>
        "From: Alice <alice@sender.test>\r\n" +
        "To: Bob <bob@example.test>\r\n" +
        "Subject: end to end " + token + "\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: 8bit\r\n" +
        "\r\n" +
        "token " + token + "\r\n" +
        ".leading dot\r\n" +
        "..two leading dots\r\n" +
        ".\tdot and tab\r\n" +
        "Grüße aus Köln – ünïcödé\r\n" +
        new string('x', 998) + "\r\n" +
        "trailing space   \r\n" +
        "\r\n" +
        "last line\r\n";

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)] // over the inline limit: stored in the spool, read back by delivery behind cleanup's new header
    public async Task Swaks_message_reaches_the_mx_host_from_dns_with_the_body_byte_exact(bool spooled)
    {
        var swaks = TestEnvironment.RequireTool("swaks");
        await using var sink = await SmtpSink.StartAsync();
        await using var dns = await Dnsmasq.StartAsync(
            "--mx-host=example.test,mx1.example.test,10", "--host-record=mx1.example.test,127.0.0.1");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:DnsServers:0"] = dns.Server,
            ["Mta:SmtpPort"] = sink.Port.ToString(),
        });

        var token = Guid.NewGuid().ToString("N");
        var message = TrickyMessage(token);
        if (spooled)
            message += string.Concat(Enumerable.Range(0, 1500).Select(i => $"line {i:D4} of a body that is spooled{(i % 7 == 0 ? "\r\n." : "")}\r\n"))
                + "last line\r\n";
        var file = Path.Combine(TestEnvironment.TempFolder("swaks"), "message.eml");
        await File.WriteAllTextAsync(file, message, new UTF8Encoding(false));

        var (exit, output) = await RunAsync(swaks, "--server", $"127.0.0.1:{mta.SmtpPort}", "--from", "alice@sender.test",
            "--to", "bob@example.test", "--data", file, "--timeout", "60");
        Assert.True(exit == 0, "swaks failed:\n" + output);
        Assert.Contains("250 2.0.0 Ok: queued as", output);

        string? dump = null;
        Assert.True(await TestEnvironment.EventuallyAsync(() =>
        {
            dump = sink.Dumps().FirstOrDefault(d => d.Contains(token) && d.Contains("last line"));
            return Task.FromResult(dump is not null);
        }, DeliveryTimeout), "message did not reach smtp-sink; dns log:\n" + dns.Output);
        Assert.NotNull(dump);

        // The envelope, not the headers, made MAIL FROM and RCPT TO.
        Assert.Contains("X-Mail-Args: <alice@sender.test>", dump);
        Assert.Contains("X-Rcpt-Args: <bob@example.test>", dump);
        // dnsmasq was asked for the MX record: the route came from DNS.
        Assert.Contains("example.test", dns.Output);
        // Cleanup's headers come before the original header, which follows unchanged.
        Assert.Matches(@"Received: from \S+ \(\[127\.0\.0\.1\]\)\s+by mta\.test \(Mta\) with ESMTP\s+id [0-9A-F]{16}", dump);
        // The message had neither: cleanup added them (before the original From:).
        var from = dump!.IndexOf("\nFrom: Alice", StringComparison.Ordinal);
        Assert.InRange(dump.IndexOf("\nMessage-Id: <", StringComparison.OrdinalIgnoreCase), 0, from);
        Assert.InRange(dump.IndexOf("\nDate: ", StringComparison.Ordinal), 0, from);
        // smtp-sink writes LF line ends; everything else must be the bytes swaks sent, unstuffed.
        var sentFromHeader = message[message.IndexOf("From: Alice", StringComparison.Ordinal)..].Replace("\r\n", "\n");
        var arrived = dump![dump!.IndexOf("From: Alice", StringComparison.Ordinal)..];
        Assert.Equal(sentFromHeader.TrimEnd('\n'), arrived.TrimEnd('\n'));
    }

    [SkippableFact]
    public async Task MailKit_message_to_localhost_lands_in_the_maildir_unchanged()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString);

        var token = Guid.NewGuid().ToString("N");
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@example.org"));
        message.To.Add(MailboxAddress.Parse("user@localhost"));
        message.Subject = "maildir " + token;
        message.Body = new TextPart("plain") { Text = "Hello " + token + "\r\n.dot line\r\n" };

        string reply;
        using (var client = new SmtpClient())
        {
            await client.ConnectAsync("127.0.0.1", mta.SmtpPort, MailKit.Security.SecureSocketOptions.None);
            reply = await client.SendAsync(message);
            await client.DisconnectAsync(true);
        }
        var queueId = reply[(reply.LastIndexOf(' ') + 1)..];
        Assert.Matches("^[0-9A-F]{16}$", queueId);

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(mta.Maildir("user").Length == 1), DeliveryTimeout),
            "nothing delivered to the maildir");
        var delivered = await File.ReadAllTextAsync(mta.Maildir("user")[0]);

        Assert.StartsWith("Return-Path: <sender@example.org>\r\nDelivered-To: user@localhost\r\nReceived: ", delivered);
        Assert.Contains("id " + queueId, delivered);
        using var sent = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        await message.WriteToAsync(format, sent);
        Assert.EndsWith(Encoding.UTF8.GetString(sent.ToArray()), delivered);
        Assert.Contains(mta.Maildir("user")[0], Directory.GetFiles(Path.Combine(mta.DataDirectory, "maildir", "user", "new")));
    }

    [SkippableFact]
    public async Task Transport_map_entry_sends_to_the_named_host_without_dns()
    {
        await using var sink = await SmtpSink.StartAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"# test map\nexample.test   smtp:[127.0.0.1]:{sink.Port}\n");
        // No DNS server at all: a lookup would fail, so delivery proves the map was used.
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = map,
            ["Mta:DnsServers:0"] = $"127.0.0.1:{TestEnvironment.FreeUdpPort()}",
        });

        var token = Guid.NewGuid().ToString("N");
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("a@sender.test"));
        message.To.Add(MailboxAddress.Parse("first@example.test"));
        message.Cc.Add(MailboxAddress.Parse("second@example.test"));
        message.Subject = "transport " + token;
        message.Body = new TextPart("plain") { Text = "via transport map" };
        using (var client = new SmtpClient())
        {
            await client.ConnectAsync("127.0.0.1", mta.SmtpPort, MailKit.Security.SecureSocketOptions.None);
            await client.SendAsync(message);
            await client.DisconnectAsync(true);
        }

        string? dump = null;
        Assert.True(await TestEnvironment.EventuallyAsync(() =>
        {
            dump = sink.Dumps().FirstOrDefault(d => d.Contains(token));
            return Task.FromResult(dump is not null);
        }, DeliveryTimeout), "message did not reach smtp-sink");
        // One job for the one next hop: both recipients in a single transaction.
        Assert.Contains("X-Rcpt-Args: <first@example.test>", dump);
        Assert.Contains("X-Rcpt-Args: <second@example.test>", dump);
        Assert.Single(sink.Dumps(), d => d.Contains(token));
    }

    [SkippableFact]
    public async Task A_4xx_reply_parks_the_job_on_the_deferred_queue_and_wakes_nothing()
    {
        await using var sink = await SmtpSink.StartAsync("-r", "RCPT");
        await using var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sink.Port}\n");
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?> { ["Mta:TransportMapFile"] = map });

        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "later@example.test", "deferred", "try again later"));

        var queues = new Azure.Storage.Queues.QueueServiceClient(azurite.ConnectionString);
        async Task<int> Count(string q)
        {
            var c = queues.GetQueueClient(q);
            return (await c.ExistsAsync()).Value ? (await c.GetPropertiesAsync()).Value.ApproximateMessagesCount : 0;
        }
        // The job is parked (invisible for the backoff) on 'deferred': not retried now, not bounced, not on 'delivery'.
        Assert.True(await TestEnvironment.EventuallyAsync(async () => await Count(Mta.Mail.Queues.QueueNames.Deferred) == 1, DeliveryTimeout),
            "no deferred job");
        var deferred = queues.GetQueueClient(Mta.Mail.Queues.QueueNames.Deferred);
        Assert.Empty((await deferred.PeekMessagesAsync()).Value); // invisible: nothing is due, so nothing to scale for
        // The delivery queue message goes once the invocation has answered, just after the deferred job was queued.
        Assert.True(await TestEnvironment.EventuallyAsync(async () => await Count(Mta.Mail.Queues.QueueNames.Delivery) == 0, DeliveryTimeout),
            "the delivery job stayed");
        Assert.Equal(0, await Count(Mta.Mail.Queues.QueueNames.Bounce));
        Assert.DoesNotContain(sink.Dumps(), d => d.Contains("try again later"));
    }

    internal static Task<(int Exit, string Output)> RunAsync(string file, params string[] args) => RunAsync(TimeSpan.FromSeconds(120), file, args);

    /// <summary>Runs a program to its end within <paramref name="limit"/>; past it the program is killed and the test fails.</summary>
    internal static async Task<(int Exit, string Output)> RunAsync(TimeSpan limit, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            await p.WaitForExitAsync().WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Path.GetFileName(file)} {string.Join(' ', args.Take(2))} still running after {limit.TotalSeconds:0} s");
        }
        return (p.ExitCode, await stdout + await stderr);
    }
}

using System.Text;
using Azure.Storage.Queues;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using MimeKit.Cryptography;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Dkim;
using Mta.Mail.Queues;
using Mta.Mail.Rewriting;
using Mta.Mail.Routing;
using Mta.Mail.Spool;
using Mta.Mail.Tracking;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The cleanup stage as a whole, on Azurite: an envelope in, and what it leaves on the delivery, hold and bounce
/// queues and in the spool checked byte for byte.
/// </summary>
public sealed class CleanupStageTests(AzuriteFixture storage) : IClassFixture<AzuriteFixture>, IAsyncLifetime
{
    private readonly string _folder = TestEnvironment.TempFolder("cleanup");
    private readonly LogCapture _log = new();
    private StorageConnection Storage => TestEnvironment.Storage(storage.Azurite.ConnectionString);

    public async Task InitializeAsync()
    {
        // Every test starts from empty queues (the class's tests share one Azurite and run one at a time).
        var queues = new MailQueues(Storage);
        await queues.CreateIfNotExistsAsync();
        foreach (var name in QueueNames.All) await queues.Get(name).ClearMessagesAsync();
        await new MessageSpool(Storage).CreateIfNotExistsAsync();
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private string File(string name, string text)
    {
        var path = Path.Combine(_folder, name);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    private CleanupStage Stage(Action<MtaOptions>? configure = null)
    {
        var o = new MtaOptions { MyHostname = "mx.example.org", LocalDomains = ["example.org"] };
        configure?.Invoke(o);
        var options = Options.Create(o);
        var logs = new LoggerFactory([_log]);
        return new CleanupStage(new SpoolLifetime(new MessageSpool(Storage), new SpoolReferences(Storage)), new MailQueues(Storage),
            new Router(options, TransportMap.Empty), new AddressRewriter(options, logs.CreateLogger<AddressRewriter>()),
            new DkimSigning(options, logs.CreateLogger<DkimSigning>()), new WaitingMail(Storage), new ContentInspector(options, logs.CreateLogger<ContentInspector>()), options, TimeProvider.System, logs.CreateLogger<CleanupStage>(),
            senderLogins: new Mta.Mail.Submission.SenderLogins(options, logs.CreateLogger<Mta.Mail.Submission.SenderLogins>()));
    }

    private static int _serial;

    private static IncomingEnvelope Envelope(string message, params string[] rcpts)
    {
        var id = $"C{DateTime.UtcNow:HHmmssfff}{Interlocked.Increment(ref _serial):D4}";
        return new IncomingEnvelope
        {
            Id = id, Sender = "a@sender.test", Recipients = rcpts.Length > 0 ? rcpts : ["u@remote.test"], ClientAddress = "192.0.2.7",
            Helo = "client.test", ArrivalTime = DateTimeOffset.Parse("2026-11-28T12:00:00Z"), Size = message.Length, BlobName = id,
            Content = Encoding.UTF8.GetBytes(message),
        };
    }

    private Task<List<T>> Queued<T>(string queue) where T : class => QueuePeek.AllAsync<T>(storage.Azurite.ConnectionString, queue);

    /// <summary>The bytes delivery will send for a job.</summary>
    private async Task<byte[]> Sent(DeliveryJob job)
    {
        var stored = job.Content ?? await new MessageSpool(Storage).ReadAsync(job.BlobName);
        return job.Header is null ? stored : [.. job.Header, .. stored.AsSpan((int)job.BodyOffset)];
    }

    private const string Plain = "From: A <a@sender.test>\r\nTo: u@remote.test\r\nSubject: hello\r\n\r\nbody line\r\n";

    [Fact]
    public async Task Puts_received_on_top_and_keeps_the_rest_byte_for_byte()
    {
        var message = "Return-Path: <forged@x.test>\r\nDelivered-To: someone@example.org\r\nSubject: caf\u00e9\r\nX-Raw: \u00ff\r\n\r\nbody \r\n";
        var envelope = Envelope(message) with { Tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384", Protocol = "ESMTPS" };
        await Stage().ProcessAsync(envelope);

        var job = Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Equal(envelope.Id + ".0", job.JobId);
        var text = Encoding.UTF8.GetString(await Sent(job));
        Assert.Matches(@"^Received: from client\.test \(\[192\.0\.2\.7\]\)\r\n\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384\)\r\n\tby mx\.example\.org \(Mta\) with ESMTPS id " + envelope.Id
            + @"\r\n\tfor <u@remote\.test>;\r\n\tSat, 28 Nov 2026 12:00:00 \+0000\r\n", text);
        // Return-Path and Delivered-To are gone; the rest is as it came, 8-bit bytes included; no headers invented for a stranger.
        Assert.EndsWith("\r\nSubject: caf\u00e9\r\nX-Raw: \u00ff\r\n\r\nbody \r\n", text);
        Assert.DoesNotContain("Return-Path", text);
        Assert.DoesNotContain("Delivered-To", text);
        Assert.DoesNotContain("Message-Id", text);
        Assert.DoesNotContain("Date:", text);
    }

    [Fact]
    public async Task Adds_message_id_and_date_for_trusted_clients_only_when_missing()
    {
        await Stage().ProcessAsync(Envelope(Plain) with { TrustedClient = true });
        await Stage().ProcessAsync(Envelope("Message-ID: <own@x>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n" + Plain) with { TrustedClient = true });
        var jobs = await Queued<DeliveryJob>(QueueNames.Delivery);
        var added = HeaderList.Load(new MemoryStream(await Sent(jobs[0])));
        Assert.Equal($"<20261128120000.{jobs[0].MessageId}@mx.example.org>", added[HeaderId.MessageId]!.Trim());
        Assert.Equal("Sat, 28 Nov 2026 12:00:00 +0000", added[HeaderId.Date]!.Trim());
        var kept = HeaderList.Load(new MemoryStream(await Sent(jobs[1])));
        Assert.Equal(["<own@x>"], kept.Where(h => h.Id == HeaderId.MessageId).Select(h => h.Value.Trim()));
        Assert.Single(kept, h => h.Id == HeaderId.Date);
    }

    [Fact]
    public async Task A_spooled_message_gets_a_new_header_in_the_job_and_its_body_is_not_copied()
    {
        var body = string.Concat(Enumerable.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 1000));
        var message = "Return-Path: <x@y>\r\nSubject: big\r\n\r\n" + body;
        var envelope = Envelope(message) with { Content = null };
        await new MessageSpool(Storage).WriteAsync(envelope.BlobName, new MemoryStream(Encoding.ASCII.GetBytes(message)));
        await Stage().ProcessAsync(envelope);

        var job = Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Null(job.Content);
        Assert.NotNull(job.Header);
        Assert.Equal(message.IndexOf("\r\n\r\n") + 4, job.BodyOffset);
        var sent = Encoding.ASCII.GetString(await Sent(job));
        Assert.StartsWith("Received: ", sent);
        Assert.EndsWith("\r\nSubject: big\r\n\r\n" + body, sent);
        Assert.DoesNotContain("Return-Path", sent);
    }

    [Fact]
    public async Task Cuts_a_header_field_longer_than_header_size_limit()
    {
        // Over header_size_limit (100 KiB), within the header block's 256 KiB, the most any stage parses.
        var huge = new string('x', 200 * 1024);
        await Stage().ProcessAsync(Envelope($"Subject: long\r\nX-Huge: {huge}\r\n\r\nbody\r\n"));
        var job = Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery));
        var sent = await Sent(job);
        var headers = HeaderList.Load(new MemoryStream(sent));
        Assert.Equal(102400 - 1, headers["X-Huge"]!.Trim().Length); // the raw value holds the space after the colon
        Assert.EndsWith("\r\n\r\nbody\r\n", Encoding.ASCII.GetString(sent));
        Assert.Single(_log.Matching("X-Huge longer than header_size_limit 102400"));
    }

    [Fact]
    public async Task A_header_block_over_the_parse_budget_is_not_parsed_and_the_job_is_left_to_the_operator()
    {
        // The ingress refuses it before the 250; one that reached the queue anyway is never parsed whole.
        var fields = string.Concat(Enumerable.Repeat("X:\r\n", 100_000)); // 400 KB of header
        var e = await Assert.ThrowsAsync<InvalidQueueMessageException>(() => Stage().ProcessAsync(Envelope(fields + "\r\nbody\r\n")));
        Assert.Contains("header block over 262144 octets", e.Message);
        Assert.Empty(await Queued<DeliveryJob>(QueueNames.Delivery));
    }

    [Theory]
    [InlineData(48, false)]
    [InlineData(49, true)]
    public async Task Bounces_a_message_with_too_many_hops(int received, bool bounced)
    {
        var hops = string.Concat(Enumerable.Range(0, received).Select(i => $"Received: from hop{i}.test by hop{i + 1}.test; Sat, 28 Nov 2026 11:00:00 +0000\r\n"));
        await Stage().ProcessAsync(Envelope(hops + Plain));
        var bounces = await Queued<ReportJob>(QueueNames.Bounce);
        var jobs = await Queued<DeliveryJob>(QueueNames.Delivery);
        if (!bounced)
        {
            Assert.Empty(bounces);
            Assert.Single(jobs);
            return;
        }
        Assert.Empty(jobs);
        var failed = Assert.Single(Assert.Single(bounces).Recipients);
        Assert.Equal(("u@remote.test", "5.4.6 Too many hops"), (failed.Recipient, failed.Reason));

        // Before the reply (in the ingress) the loop is refused to the client instead: no bounce, no job.
        await new QueueClient(storage.Azurite.ConnectionString, QueueNames.Bounce).ClearMessagesAsync();
        Assert.Equal("554 5.4.6 Too many hops", await Stage().ProcessBeforeReplyAsync(Envelope(hops + Plain)));
        Assert.Empty(await Queued<ReportJob>(QueueNames.Bounce));
        Assert.Empty(await Queued<DeliveryJob>(QueueNames.Delivery));
    }

    [Fact]
    public async Task Header_checks_reject_discard_hold_warn_and_ignore()
    {
        var checks = File("header_checks", """
            # Postfix regexp table
            /^Subject: .*viagra/          REJECT no pills here
            /^Subject: drop me/           DISCARD
            /^Subject: look at me/        HOLD suspicious
            /^X-Mailer: old/              WARN old mailer
            /^X-Internal:/                IGNORE
            """);
        var stage = Stage(o => o.HeaderChecksFile = checks);

        await stage.ProcessAsync(Envelope("Subject: cheap VIAGRA\r\n\r\nx\r\n"));
        var reject = Assert.Single(Assert.Single(await Queued<ReportJob>(QueueNames.Bounce)).Recipients);
        Assert.Equal("5.7.1 no pills here", reject.Reason);
        Assert.Empty(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Single(_log.Matching(": reject: header Subject: cheap VIAGRA from [192.0.2.7]; from=<a@sender.test> to=<u@remote.test>", "no pills here", "header_checks:2"));
        // Before the reply (in the ingress) the REJECT is the client's answer, not a bounce.
        Assert.Equal("550 5.7.1 no pills here", await stage.ProcessBeforeReplyAsync(Envelope("Subject: cheap VIAGRA\r\n\r\nx\r\n")));

        await stage.ProcessAsync(Envelope("Subject: drop me\r\n\r\nx\r\n"));
        Assert.Empty(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Single(_log.Matching("status=discarded"));

        await stage.ProcessAsync(Envelope("Subject: look at me\r\n\r\nx\r\n"));
        Assert.Empty(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Equal("u@remote.test", Assert.Single(Assert.Single(await Queued<DeliveryJob>(QueueNames.Hold)).Recipients));

        await stage.ProcessAsync(Envelope("Subject: fine\r\nX-Mailer: old thing\r\nX-Internal: secret\r\n\r\nx\r\n"));
        var sent = Encoding.ASCII.GetString(await Sent(Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery))));
        Assert.Contains("X-Mailer: old thing\r\n", sent);
        Assert.DoesNotContain("X-Internal", sent);
        Assert.Single(_log.Matching(": warning: header X-Mailer: old thing", "old mailer"));
        Assert.Single(await Queued<ReportJob>(QueueNames.Bounce)); // still only the first message's
    }

    [Fact]
    public async Task A_message_a_milter_quarantined_goes_to_the_hold_queue_with_the_reason()
    {
        var envelope = Envelope(Plain) with { Hold = "scripted quarantine" };
        await Stage().ProcessAsync(envelope);
        Assert.Empty(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Equal("u@remote.test", Assert.Single(Assert.Single(await Queued<DeliveryJob>(QueueNames.Hold)).Recipients));
        Assert.Single(_log.Matching($"{envelope.Id}: message-id=", "status=held"));
    }

    [Fact]
    public async Task Body_checks_look_at_body_lines_within_their_size_limit()
    {
        var checks = File("body_checks", "/^click here to win/ REJECT spam\n!/./ DUNNO\n");
        var stage = Stage(o => { o.BodyChecksFile = checks; o.BodyChecksSizeLimit = 1000; });

        await stage.ProcessAsync(Envelope("Subject: a\r\n\r\nhello\r\nClick here to WIN\r\n"));
        Assert.Equal("5.7.1 spam", Assert.Single(Assert.Single(await Queued<ReportJob>(QueueNames.Bounce)).Recipients).Reason);

        // Past body_checks_size_limit the body is not looked at (Postfix's bound on the work per message).
        await stage.ProcessAsync(Envelope("Subject: b\r\n\r\n" + new string('.', 2000) + "\r\nclick here to win\r\n"));
        Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery));
    }

    [Fact]
    public async Task Rewrites_envelope_addresses_and_carries_dsn_parameters_to_the_new_recipients()
    {
        var canonical = File("sender_canonical", "a@sender.test  alice@example.org\n");
        var virtuals = File("virtual", "team@example.org  bob@remote.test, carol@remote.test\n");
        var stage = Stage(o => { o.SenderCanonicalMapsFile = canonical; o.VirtualAliasMapsFile = virtuals; });
        var envelope = Envelope(Plain, "team@example.org") with
        {
            Dsn = new DsnRequest { Recipients = new Dictionary<string, RecipientDsn> { ["team@example.org"] = new("SUCCESS,FAILURE", null) } },
        };
        await stage.ProcessAsync(envelope);

        var job = Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Equal("alice@example.org", job.Sender);
        Assert.Equal(["bob@remote.test", "carol@remote.test"], job.Recipients);
        foreach (var r in job.Recipients)
            Assert.Equal(new RecipientDsn("SUCCESS,FAILURE", "rfc822;team@example.org"), job.Dsn!.Recipients[r]);
    }

    [Fact]
    public async Task A_recipient_whose_aliases_expand_too_far_is_bounced_and_the_others_delivered()
    {
        var virtuals = File("virtual", "big@example.org " + string.Join(",", Enumerable.Range(0, 20).Select(i => $"m{i}@remote.test")) + "\n");
        var stage = Stage(o => { o.VirtualAliasMapsFile = virtuals; o.VirtualAliasExpansionLimit = 10; });
        await stage.ProcessAsync(Envelope(Plain, "big@example.org", "ok@remote.test"));
        Assert.Equal(["ok@remote.test"], Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery)).Recipients);
        var failed = Assert.Single(Assert.Single(await Queued<ReportJob>(QueueNames.Bounce)).Recipients);
        Assert.Equal("big@example.org", failed.Recipient);
        Assert.StartsWith("5.4.6 unreasonable virtual_alias_maps map expansion size", failed.Reason);
    }

    [Fact]
    public async Task Groups_recipients_into_jobs_with_the_same_ids_every_time()
    {
        var stage = Stage(o => o.DestinationRecipientLimit = 2);
        var envelope = Envelope(Plain, "a@one.test", "b@two.test", "c@one.test", "d@one.test");
        Assert.Null(await stage.ProcessBeforeReplyAsync(envelope)); // the ingress's cleanup, before its 250
        // The cleanup stage's run of it after the ingress's failed part-way: same ids, marked as possible duplicates.
        await stage.ProcessAsync(envelope with { MaybeQueued = true });
        await stage.ProcessAsync(envelope, dequeueCount: 2); // a retry of the same queue message, as after a crash
        var jobs = await Queued<DeliveryJob>(QueueNames.Delivery);
        Assert.Equal(9, jobs.Count);
        var first = jobs.Take(3).Select(j => (j.JobId, string.Join(",", j.Recipients))).ToList();
        Assert.Equal([($"{envelope.Id}.0", "a@one.test,c@one.test"), ($"{envelope.Id}.1", "d@one.test"), ($"{envelope.Id}.2", "b@two.test")], first);
        Assert.Equal(first, jobs.Skip(3).Take(3).Select(j => (j.JobId, string.Join(",", j.Recipients))).ToList());
        Assert.Equal(first, jobs.Skip(6).Select(j => (j.JobId, string.Join(",", j.Recipients))).ToList());
        Assert.Equal([false, false, false, true, true, true, true, true, true], jobs.Select(j => j.MaybeDuplicate).ToList());
    }

    [Fact]
    public async Task Stores_an_inline_message_once_when_its_jobs_would_not_fit_in_a_queue_message()
    {
        var body = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(22_500), Base64FormattingOptions.InsertLineBreaks) + "\r\n";
        var recipients = Enumerable.Range(0, 900).Select(i => $"r{i:D4}.with.a.rather.long.local.part@remote.test").ToArray();
        var envelope = Envelope("Subject: many\r\n\r\n" + body, recipients);
        await Stage(o => o.DestinationRecipientLimit = 1000).ProcessAsync(envelope);

        var job = Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery));
        Assert.Null(job.Content);
        Assert.Equal(900, job.Recipients.Count);
        var sent = Encoding.ASCII.GetString(await Sent(job));
        Assert.StartsWith("Received: ", sent);
        Assert.EndsWith("Subject: many\r\n\r\n" + body, sent);
    }

    public static TheoryData<string, string> Malformed => new()
    {
        { "mbox From line", "From someone Sat Nov 28 12:00:00 2026\r\nSubject: x\r\n\r\nbody\r\n" },
        { "no header at all", "\r\njust a body\r\n" },
        { "NUL bytes", "Subject: a\0b\r\n\r\nbo\0dy\r\n" },
        { "8-bit garbage and invalid charset", "Subject: =?x-unknown?B?////?= \u00fe\u00ff\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n\u00c0\u00c1\r\n" },
        { "header line without a colon", "Subject: a\r\nthis is not a header\r\n\r\nbody\r\n" },
        { "deeply nested multiparts", Nested(500) },
        { "10,000 parts", ManyParts(10_000) },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task Malformed_messages_are_delivered_as_they_came(string what, string message)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await Stage().ProcessAsync(Envelope(message));
        var job = Assert.Single(await Queued<DeliveryJob>(QueueNames.Delivery));
        var sent = await Sent(job);
        Assert.True(sent.AsSpan().StartsWith("Received: from client.test"u8), what);
        // Every byte after our Received header is the client's (Return-Path and Delivered-To aside, none here).
        Assert.True(sent.AsSpan().EndsWith(Encoding.UTF8.GetBytes(message)), what);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"{what}: {watch.Elapsed}");
    }

    private static string Nested(int depth)
    {
        var open = string.Concat(Enumerable.Range(0, depth).Select(i => $"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"));
        var close = string.Concat(Enumerable.Range(0, depth).Reverse().Select(i => $"\r\n--b{i}--\r\n"));
        return "Subject: nested\r\nMIME-Version: 1.0\r\n" + open + "Content-Type: text/plain\r\n\r\ndeep" + close;
    }

    private static string ManyParts(int count)
        => "Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n"
            + string.Concat(Enumerable.Range(0, count).Select(i => $"--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n")) + "--p--\r\n";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Signs_mail_from_trusted_clients_with_dkim_and_the_sent_bytes_verify(bool spooled)
    {
        var key = Path.Combine(_folder, "example.org.pem");
        using (var rsa = System.Security.Cryptography.RSA.Create(2048))
            System.IO.File.WriteAllText(key, rsa.ExportPkcs8PrivateKeyPem());
        var table = File("signing_table", $"example.org  s2026  {key}\n");
        var stage = Stage(o => o.DkimSigningTable = table);

        var message = "From: Alice <alice@example.org>\r\nTo: u@remote.test\r\nSubject: signed  \r\nContent-Type: text/plain\r\n\r\nHello \r\n  world\r\n\r\n"
            + (spooled ? new string('z', 40_000) + "\r\n" : "");
        var envelope = Envelope(message) with { TrustedClient = true, Sender = "alice@example.org" };
        if (spooled)
        {
            envelope = envelope with { Content = null };
            await new MessageSpool(Storage).WriteAsync(envelope.BlobName, new MemoryStream(Encoding.ASCII.GetBytes(message)));
        }
        await stage.ProcessAsync(envelope);
        await stage.ProcessAsync(Envelope(message) with { Sender = "alice@example.org" }); // from a stranger: never signed

        var jobs = await Queued<DeliveryJob>(QueueNames.Delivery);
        var sent = await Sent(jobs[0]);
        Assert.StartsWith("DKIM-Signature: v=1; a=rsa-sha256; ", Encoding.ASCII.GetString(sent));
        var received = MimeMessage.Load(new MemoryStream(sent));
        var verifier = new DkimVerifier(new FileKeyLocator(key));
        var signature = received.Headers[received.Headers.IndexOf(HeaderId.DkimSignature)];
        Assert.Contains("d=example.org; s=s2026; c=relaxed/relaxed;", signature.Value);
        Assert.True(verifier.Verify(received, signature), "signature does not verify over the bytes delivery sends");
        // The signed body is the stored body, unchanged.
        Assert.EndsWith(message[message.IndexOf("\r\n\r\n")..], Encoding.ASCII.GetString(sent));

        Assert.DoesNotContain("DKIM-Signature", Encoding.ASCII.GetString(await Sent(jobs[1])));
    }

    [Fact]
    public async Task A_login_is_dkim_signed_only_for_domains_it_owns_in_the_sender_login_map()
    {
        string Key(string name)
        {
            var path = Path.Combine(_folder, name + ".pem");
            using var rsa = System.Security.Cryptography.RSA.Create(2048);
            System.IO.File.WriteAllText(path, rsa.ExportPkcs8PrivateKeyPem());
            return path;
        }
        var table = File("signing_table_2", $"example.org s1 {Key("own")}\nbank.example s1 {Key("other")}\n");
        var logins = File("sender_logins", "alice@example.org alice\n@bank.example bob\n");
        var stage = Stage(o => { o.DkimSigningTable = table; o.SenderLoginMapsFile = logins; });
        string Message(string from) => $"From: {from}\r\nTo: u@remote.test\r\nSubject: s\r\n\r\nbody\r\n";

        await stage.ProcessAsync(Envelope(Message("alice@example.org")) with { TrustedClient = true, Login = "alice", Sender = "alice@example.org" });
        await stage.ProcessAsync(Envelope(Message("ceo@bank.example")) with { TrustedClient = true, Login = "alice", Sender = "alice@example.org" });
        await stage.ProcessAsync(Envelope(Message("ceo@bank.example")) with { TrustedClient = true, Login = "bob", Sender = "ceo@bank.example" });

        var sent = new List<string>();
        foreach (var job in await Queued<DeliveryJob>(QueueNames.Delivery)) sent.Add(Encoding.ASCII.GetString(await Sent(job)));
        Assert.Equal(3, sent.Count);
        Assert.Single(sent, m => m.StartsWith("DKIM-Signature:") && m.Contains("d=example.org"));
        Assert.Single(sent, m => m.StartsWith("DKIM-Signature:") && m.Contains("d=bank.example")); // bob owns it
        Assert.Single(sent, m => !m.StartsWith("DKIM-Signature:"));
        Assert.Single(_log.Matching("not DKIM-signed: From domain bank.example is not one that login alice owns"));
    }

    private sealed class FileKeyLocator(string privateKeyPem) : DkimPublicKeyLocatorBase
    {
        public override Org.BouncyCastle.Crypto.AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken ct = default)
        {
            using var rsa = System.Security.Cryptography.RSA.Create();
            rsa.ImportFromPem(System.IO.File.ReadAllText(privateKeyPem));
            return GetPublicKey("v=DKIM1; k=rsa; p=" + Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo()));
        }

        public override Task<Org.BouncyCastle.Crypto.AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken ct = default)
            => Task.FromResult(LocatePublicKey(methods, domain, selector, ct));
    }
}

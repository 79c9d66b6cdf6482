using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Dkim;
using Mta.Mail.Queues;
using Mta.Mail.Rewriting;
using Mta.Mail.Routing;
using Mta.Mail.Spool;
using Mta.Mail.Tracking;

namespace Mta.Benchmarks;

/// <summary>
/// The CPU work of cleanup for one message, storage left out: parse the header, header and body checks, envelope
/// rewriting, the new header, DKIM signing (when asked), routing, and the delivery job serialized for its queue.
/// With a typical configuration: five header checks, three body checks, a 100-entry virtual alias map.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class CleanupBenchmarks
{
    [Params(2 * 1024, 1024 * 1024)]
    public int Size;

    [Params(false, true)]
    public bool Sign;

    private CleanupStage _stage = null!;
    private AddressRewriter _rewriter = null!;
    private Router _router = null!;
    private IncomingEnvelope _envelope = null!;

    [GlobalSetup]
    public void Setup()
    {
        var folder = Directory.CreateTempSubdirectory("mta-bench").FullName;
        string Write(string name, string text) { var p = Path.Combine(folder, name); File.WriteAllText(p, text); return p; }
        using (var rsa = RSA.Create(2048)) Write("example.org.pem", rsa.ExportPkcs8PrivateKeyPem());
        var o = new MtaOptions
        {
            MyHostname = "mx.example.org",
            LocalDomains = ["example.org"],
            HeaderChecksFile = Write("header_checks", "/^Subject: .*viagra/ REJECT\n/^X-Spam-Flag: YES/ DISCARD\n/^Subject: hold me/ HOLD\n/^X-Mailer: old/ WARN\n/^X-Internal:/ IGNORE\n"),
            BodyChecksFile = Write("body_checks", "/click here to win/ REJECT\n/^begin [0-7]{3} /i REJECT uuencoded\n/casino bonus/ DISCARD\n"),
            VirtualAliasMapsFile = Write("virtual", string.Concat(Enumerable.Range(0, 100).Select(i => $"list{i}@example.org m{i}@remote.test, n{i}@remote.test\n"))),
            DkimSigningTable = Sign ? Write("signing_table", "example.org s1 example.org.pem\n") : null,
        };
        var options = Options.Create(o);
        var storage = StorageConnection.From(new ConfigurationBuilder().AddInMemoryCollection([new("AzureWebJobsStorage", "UseDevelopmentStorage=true")]).Build());
        _router = new Router(options, TransportMap.Empty);
        _rewriter = new AddressRewriter(options, NullLogger<AddressRewriter>.Instance);
        _stage = new CleanupStage(new SpoolLifetime(new MessageSpool(storage), new SpoolReferences(storage)), new MailQueues(storage), _router, _rewriter,
            new DkimSigning(options, NullLogger<DkimSigning>.Instance), new WaitingMail(storage), new ContentInspector(options, NullLogger<ContentInspector>.Instance), options, TimeProvider.System, NullLogger<CleanupStage>.Instance);

        var header = "From: Alice <alice@example.org>\r\nTo: list7@example.org\r\nSubject: quarterly report\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n"
            + "Message-ID: <report-7@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
        var line = "The quick brown fox jumps over the lazy dog; a line of ordinary text in a message body.\r\n";
        var body = new StringBuilder();
        while (header.Length + body.Length < Size) body.Append(line);
        var bytes = Encoding.UTF8.GetBytes(header + body);
        _envelope = new IncomingEnvelope
        {
            Id = "BENCH0000000001", Sender = "alice@example.org", Recipients = ["list7@example.org", "bob@remote.test"], ClientAddress = "192.0.2.7",
            Helo = "client.test", ArrivalTime = DateTimeOffset.UtcNow, Size = bytes.Length, BlobName = "BENCH0000000001", Content = bytes, TrustedClient = true,
        };
    }

    [Benchmark]
    public async Task<int> Cleanup()
    {
        var content = _envelope.Content!;
        var parser = new MimeParser(new MemoryStream(content, writable: false), MimeFormat.Entity);
        var headers = parser.ParseHeaders();
        var offset = parser.Position;
        var budget = new CheckBudget();
        var verdict = _stage.InspectHeader(_envelope, headers, "from [192.0.2.7]", budget)
            ?? await _stage.InspectBodyAsync(_envelope, content, offset, "from [192.0.2.7]", budget, default);
        if (verdict is not null) throw new InvalidOperationException("the benchmark message should pass the checks");
        var sender = _rewriter.RewriteSender(_envelope.Sender);
        var recipients = _rewriter.RewriteRecipients(_envelope.Recipients);
        var header = _stage.BuildHeader(_envelope, headers, parsed: true);
        if (Sign) header = await _stage.SignAsync(_envelope, headers, header, content, offset, default);
        var message = new byte[header.Length + content.Length - offset];
        header.CopyTo(message, 0);
        content.AsSpan((int)offset).CopyTo(message.AsSpan(header.Length));
        var length = 0;
        foreach (var (hop, group) in _router.Group(recipients.Recipients.Select(r => r.Address), 50))
            length += QueueJson.Serialize(new DeliveryJob
            {
                MessageId = _envelope.Id, JobId = _envelope.Id + ".0", BlobName = _envelope.BlobName, Sender = sender, Recipients = group,
                NextHop = hop, ArrivalTime = _envelope.ArrivalTime, Content = message,
            }).Length;
        return length;
    }
}


using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Routing;
using Mta.Mail.Spool;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class CleanupHeaderTests
{
    private static readonly StorageConnection NoStorage = TestEnvironment.Storage(); // never contacted

    private static CleanupStage Stage()
    {
        var options = Options.Create(new MtaOptions { MyHostname = "mx.example.org", LocalDomains = ["localhost"] });
        return new CleanupStage(new MessageSpool(NoStorage), new MailQueues(NoStorage), new Router(options, TransportMap.Empty),
            options, TimeProvider.System, NullLogger<CleanupStage>.Instance);
    }

    private static IncomingEnvelope Envelope(params string[] rcpts) => new()
    {
        Id = "A1B2C3D4E5F60718", Sender = "a@sender.test", Recipients = rcpts, ClientAddress = "192.0.2.7",
        Helo = "client.test", ArrivalTime = DateTimeOffset.Parse("2026-11-28T12:00:00Z"), Size = 10, BlobName = "A1B2C3D4E5F60718",
    };

    private static HeaderList Headers(string text) => HeaderList.Load(new MemoryStream(Encoding.ASCII.GetBytes(text + "\r\n")));

    [Fact]
    public void Adds_received_message_id_and_date_when_missing()
    {
        var prefix = Stage().BuildHeaderPrefix(Envelope("u@localhost"), Headers("Subject: x\r\n"));
        var added = Headers(prefix);
        Assert.Equal(["Received", "Message-Id", "Date"], added.Select(h => h.Field));
        var received = added[HeaderId.Received]!.Replace("\r\n", "").Replace("\t", " ");
        Assert.Matches(@"^from client\.test \(\[192\.0\.2\.7\]\)\s+by mx\.example\.org \(Mta\) with ESMTP\s+id A1B2C3D4E5F60718\s+for <u@localhost>; Sat, 28 Nov 2026 12:00:00 \+0000$", received);
        Assert.Equal("<20261128120000.A1B2C3D4E5F60718@mx.example.org>", added[HeaderId.MessageId]!.Trim());
        Assert.EndsWith("\r\n", prefix);
        Assert.DoesNotContain("\r\n\r\n", prefix); // it continues into the message's own header
    }

    [Fact]
    public void Names_the_tls_session_and_protocol()
    {
        var prefix = Stage().BuildHeaderPrefix(Envelope("u@localhost") with { Tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384", Protocol = "ESMTPSA" },
            Headers("Message-ID: <x@y>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"));
        var received = Headers(prefix)[HeaderId.Received]!.Replace("\r\n", "").Replace("\t", " ");
        Assert.Matches(@"^from client\.test \(\[192\.0\.2\.7\]\)\s+\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384\)\s+by mx\.example\.org \(Mta\) with ESMTPSA\s+id ", received);
    }

    [Fact]
    public void Keeps_the_messages_own_message_id_and_date_and_names_no_recipient_for_many()
    {
        var prefix = Stage().BuildHeaderPrefix(Envelope("a@localhost", "b@localhost"),
            Headers("Message-ID: <x@y>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"));
        var added = Headers(prefix);
        Assert.Equal(["Received"], added.Select(h => h.Field));
        Assert.DoesNotContain(" for <", added[HeaderId.Received]);
    }
}

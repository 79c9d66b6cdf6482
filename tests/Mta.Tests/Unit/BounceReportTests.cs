using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Bounce;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Mail.Routing;
using Mta.Mail.Spool;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class BounceReportTests
{
    private static BounceStage Stage()
    {
        var storage = TestEnvironment.Storage(); // never contacted
        var options = Options.Create(new MtaOptions { MyHostname = "mx.example.org", LocalDomains = ["localhost"] });
        return new BounceStage(new SpoolLifetime(new MessageSpool(storage), new SpoolReferences(storage)), new MailQueues(storage),
            new Router(options, TransportMap.Empty), options, TimeProvider.System, NullLogger<BounceStage>.Instance);
    }

    private static ReportJob Job(params ReportedRecipient[] r) => new()
    {
        MessageId = "ID1", BlobName = "ID1", Sender = "author@example.org", ArrivalTime = DateTimeOffset.Parse("2026-11-28T10:00:00Z"), Recipients = r,
    };

    [Theory]
    [InlineData("550 5.1.1 <x@y>: Recipient address rejected", "5.1.1")]
    [InlineData("5.1.2 Host or domain name not found", "5.1.2")]
    [InlineData("4.4.1 connect to host: timed out", "5.4.1")]
    [InlineData("554 Transaction failed", "5.0.0")]
    public void Status_comes_from_the_reason(string reason, string status) => Assert.Equal(status, BounceStage.StatusCode(reason));

    [Fact]
    public void Small_originals_are_returned_whole_large_ones_as_header_only()
    {
        var small = Encoding.ASCII.GetBytes("Subject: small\r\nFrom: a@example.org\r\n\r\nbody\r\n");
        var report = Assert.IsType<MultipartReport>(Stage().BuildNotification(Job(new ReportedRecipient("x@example.net", "550 5.1.1 no such user")), small, DateTimeOffset.UtcNow).Body);
        Assert.Equal("small", Assert.IsType<MessagePart>(report[2]).Message!.Subject);

        var large = Encoding.ASCII.GetBytes("Subject: large\r\n\r\n" + new string('x', BounceStage.BounceSizeLimit + 1));
        report = Assert.IsType<MultipartReport>(Stage().BuildNotification(Job(new ReportedRecipient("x@example.net", "550 5.1.1 no such user")), large, DateTimeOffset.UtcNow).Body);
        var headers = Assert.IsType<TextRfc822Headers>(report[2]);
        Assert.Equal("large", headers.Message!.Subject);
        using var written = new MemoryStream();
        report.WriteTo(written);
        Assert.DoesNotContain("xxxxxxxxxx", Encoding.ASCII.GetString(written.ToArray()));
        Assert.Contains("text/rfc822-headers", Encoding.ASCII.GetString(written.ToArray()));
    }

    [Fact]
    public void One_status_group_per_failed_recipient()
    {
        var msg = Stage().BuildNotification(Job(new ReportedRecipient("a@example.net", "550 5.1.1 unknown"), new ReportedRecipient("b@example.net", "552 5.2.2 mailbox full")),
            Encoding.ASCII.GetBytes("Subject: s\r\n\r\nb\r\n"), DateTimeOffset.UtcNow);
        Assert.Equal("MAILER-DAEMON@mx.example.org", msg.From.Mailboxes.Single().Address);
        Assert.Equal("author@example.org", msg.To.Mailboxes.Single().Address);
        var status = Assert.IsType<MessageDeliveryStatus>(Assert.IsType<MultipartReport>(msg.Body)[1]);
        Assert.Equal(3, status.StatusGroups.Count);
        Assert.Equal(["5.1.1", "5.2.2"], status.StatusGroups.Skip(1).Select(g => g["Status"]));
        Assert.Equal("Sat, 28 Nov 2026 10:00:00 +0000", status.StatusGroups[0]["Arrival-Date"]);
    }
}

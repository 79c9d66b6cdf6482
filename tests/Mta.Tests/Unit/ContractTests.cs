using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class ContractTests
{
    [Fact]
    public void Envelope_round_trips_through_queue_json()
    {
        var e = new IncomingEnvelope
        {
            Id = "ABC", Sender = "", Recipients = ["a@b.test", "jürgen@bücher.example"], ClientAddress = "::1",
            Helo = "client.test", ArrivalTime = DateTimeOffset.Parse("2026-11-28T12:00:00Z"), Size = 42, BlobName = "ABC",
        };
        var json = QueueJson.Serialize(e);
        Assert.Contains("\"recipients\":[", json);
        var back = QueueJson.Deserialize<IncomingEnvelope>(json);
        Assert.Equal(e with { Recipients = back.Recipients }, back);
        Assert.Equal(e.Recipients, back.Recipients);
    }

    private static IncomingEnvelope WithContent(byte[] content) => new()
    {
        Id = "ABC", Sender = "a@b.test", Recipients = ["c@d.test"], ClientAddress = "::1", Helo = "client.test",
        ArrivalTime = DateTimeOffset.Parse("2026-11-28T12:00:00Z"), Size = content.Length, BlobName = "ABC", Content = content,
    };

    [Fact]
    public void Large_message_content_is_deflated_in_the_queue_message_and_small_stays_plain_base64()
    {
        // Small: plain base64, as before compression existed.
        var small = System.Text.Encoding.ASCII.GetBytes("Subject: hi\r\n\r\nhello\r\n");
        var smallJson = QueueJson.Serialize(WithContent(small));
        Assert.Contains($"\"content\":\"{Convert.ToBase64String(small)}\"", smallJson);
        Assert.Equal(small, QueueJson.Deserialize<IncomingEnvelope>(smallJson).Content);

        // 48 KiB of attachment-like text (base64 of random bytes): deflated to about three quarters, so the queue
        // message (the JSON as it is) stays well under Azure's 64 KiB.
        var text = System.Text.Encoding.ASCII.GetBytes("Subject: file\r\n\r\n" + Convert.ToBase64String(
            System.Security.Cryptography.RandomNumberGenerator.GetBytes(35_500), Base64FormattingOptions.InsertLineBreaks));
        Assert.InRange(text.Length, 47_000, 48 * 1024);
        var json = QueueJson.Serialize(WithContent(text));
        Assert.Contains("\"content\":\"deflate:", json);
        Assert.True(json.Length < 52 * 1024, $"{json.Length} octets of JSON");
        Assert.Equal(text, QueueJson.Deserialize<IncomingEnvelope>(json).Content);
        Assert.Equal(text, QueueJson.Deserialize<DeliveryJob>(QueueJson.Serialize(new DeliveryJob
        {
            MessageId = "ABC", JobId = "ABC.0", BlobName = "ABC", Sender = "", Recipients = ["c@d.test"],
            NextHop = new NextHop { Transport = Transport.Smtp, Host = "h", Port = 25 }, ArrivalTime = DateTimeOffset.UnixEpoch, Content = text,
        })).Content);

        // Random bytes do not deflate: written plain. A plain large content (queued before compression) still reads.
        var random = System.Security.Cryptography.RandomNumberGenerator.GetBytes(20_000);
        Assert.DoesNotContain("deflate:", QueueJson.Serialize(WithContent(random)));
        Assert.Equal(text, QueueJson.Deserialize<IncomingEnvelope>(smallJson.Replace(Convert.ToBase64String(small), Convert.ToBase64String(text))).Content);

        // Damaged or oversized deflated content is a malformed queue message (retried, then poisoned), not a crash.
        Assert.Throws<InvalidQueueMessageException>(() => QueueJson.Deserialize<IncomingEnvelope>(json.Replace("deflate:", "deflate:AAAA")));
        var bomb = QueueJson.Serialize(WithContent(new byte[MessageBytesJson.MaxInflated + 1]));
        Assert.Contains("deflate:", bomb);
        Assert.Throws<InvalidQueueMessageException>(() => QueueJson.Deserialize<IncomingEnvelope>(bomb));
    }

    [Fact]
    public void Next_hop_serializes_its_transport_by_name()
    {
        var json = QueueJson.Serialize(new NextHop { Transport = Transport.Smtp, Host = "h", Port = 25 });
        Assert.Contains("\"transport\":\"smtp\"", json);
    }

    [Fact]
    public void Report_actions_travel_as_their_rfc3464_keywords_and_default_to_failed()
    {
        // A report queued by an earlier release, where the action was a string.
        const string queued = """
            {"messageId":"M1","blobName":"M1","sender":"s@x.test","arrivalTime":"2026-11-28T12:00:00+00:00",
             "recipients":[{"recipient":"a@x.test","reason":"451 4.3.0 later","action":"delayed"},
                           {"recipient":"b@x.test","reason":"550 5.1.1 no"}]}
            """;
        var report = QueueJson.Deserialize<ReportJob>(queued);
        Assert.Equal(DsnAction.Delayed, report.Recipients[0].Action);
        Assert.Equal(DsnAction.Failed, report.Recipients[1].Action); // no action: a bounce
        var json = QueueJson.Serialize(report);
        Assert.Contains("\"action\":\"delayed\"", json);
        Assert.Contains("\"action\":\"failed\"", json);
        Assert.Equal(report.Recipients, QueueJson.Deserialize<ReportJob>(json).Recipients);
        Assert.Equal(["failed", "delayed", "delivered", "relayed"], Enum.GetValues<DsnAction>().Select(a => a.Keyword()));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("null")]
    [InlineData("{\"id\":\"x\"}")]
    [InlineData("[1,2]")]
    public void Malformed_messages_are_invalid_queue_messages(string text)
    {
        Assert.Throws<InvalidQueueMessageException>(() => QueueJson.Deserialize<IncomingEnvelope>(text));
    }

    [Theory]
    [InlineData(0, 0.0, 300)]
    [InlineData(1, 0.0, 600)]
    [InlineData(3, 0.0, 2400)]
    [InlineData(4, 0.0, 4000)]
    [InlineData(40, 0.0, 4000)]
    [InlineData(0, 0.5, 330)]
    [InlineData(40, 0.999, 4799.2)]
    public void Backoff_doubles_from_minimal_to_maximal_plus_jitter(int attempt, double draw, double seconds)
    {
        var policy = new RetryPolicy(Microsoft.Extensions.Options.Options.Create(new Mta.Mail.Configuration.MtaOptions()));
        Assert.Equal(seconds, policy.Delay(attempt, draw).TotalSeconds, precision: 1);
    }

    [Fact]
    public void Deferred_mail_expires_after_the_queue_lifetime()
    {
        var policy = new RetryPolicy(Microsoft.Extensions.Options.Options.Create(new Mta.Mail.Configuration.MtaOptions()));
        var arrival = DateTimeOffset.Parse("2026-11-01T00:00:00Z");
        Assert.False(policy.Expired(arrival, arrival.AddDays(5).AddSeconds(-1)));
        Assert.True(policy.Expired(arrival, arrival.AddDays(5)));
    }

    [Theory]
    [InlineData("user", true)]
    [InlineData("first.last+tag", true)]
    [InlineData("../etc", false)]
    [InlineData("a/b", false)]
    [InlineData(".hidden", false)]
    [InlineData("", false)]
    public void Maildir_names_stay_inside_the_root(string user, bool safe)
    {
        Assert.Equal(safe, Mta.Mail.Routing.LocalMailbox.IsSafeName(user));
    }

    [Theory]
    [InlineData("Forwarded+me@example.org", "Forwarded+2Bme@example.org")]
    [InlineData("a=b c", "a+3Db+20c")]
    [InlineData("jörg@example.org", "j+C3+B6rg@example.org")]
    public void Xtext_encodes_what_rfc_3461_reserves_and_decodes_back(string text, string xtext)
    {
        Assert.Equal(xtext, Xtext.Encode(text));
        Assert.Equal(text, Xtext.Decode(xtext));
    }
}

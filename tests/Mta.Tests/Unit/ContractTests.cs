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

    [Fact]
    public void Next_hop_serializes_its_transport_by_name()
    {
        var json = QueueJson.Serialize(new NextHop { Transport = Transport.Smtp, Host = "h", Port = 25 });
        Assert.Contains("\"transport\":\"smtp\"", json);
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
    [InlineData(0, 300)]
    [InlineData(1, 600)]
    [InlineData(3, 2400)]
    [InlineData(4, 4000)]
    [InlineData(40, 4000)]
    public void Backoff_doubles_from_minimal_to_maximal(int attempt, int seconds)
    {
        Assert.Equal(TimeSpan.FromSeconds(seconds), DeliveryStage.Backoff(attempt));
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
        Assert.Equal(safe, MaildirDelivery.IsSafeMailboxName(user));
    }
}

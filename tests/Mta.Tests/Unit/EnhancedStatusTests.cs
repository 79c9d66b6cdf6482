using Mta.Mail.Delivery;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class EnhancedStatusTests
{
    [Theory]
    [InlineData("250 2.0.0 Ok: queued as X", "2.0.0")]
    [InlineData("550 5.1.1 <u@x>: Recipient address rejected", "5.1.1")]
    [InlineData("4.4.1 connect to host: refused", "4.4.1")]
    [InlineData("5.1.10 Domain does not accept mail", "5.1.10")]
    [InlineData("250 Ok", null)]
    [InlineData("version 1.2.3 of something", null)]
    public void Finds_the_code_in_a_reply(string text, string? code) => Assert.Equal(code, EnhancedStatus.Find(text));

    [Theory]
    [InlineData(RecipientStatus.Delivered, "delivered to maildir", "2.0.0")]
    [InlineData(RecipientStatus.Deferred, "450 4.2.0 mailbox busy", "4.2.0")]
    [InlineData(RecipientStatus.Bounced, "4.4.7 message expired", "5.4.7")]
    [InlineData(RecipientStatus.Bounced, "554 Transaction failed", "5.0.0")]
    public void The_outcome_sets_the_class(RecipientStatus status, string detail, string code) => Assert.Equal(code, EnhancedStatus.For(status, detail));
}

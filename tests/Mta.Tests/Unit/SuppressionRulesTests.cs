using Mta.Mail.Suppression;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The suppression list's rules apart from storage: lifetimes per category, and when an entry applies.</summary>
public sealed class SuppressionRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 7, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Lifetimes_name_the_suppressing_categories_and_zero_is_never()
    {
        var lifetimes = SuppressionList.ParseLifetimes("invalid_recipient=0, bad_domain=30,MANUAL=0");
        Assert.Equal(3, lifetimes.Count);
        Assert.Null(lifetimes["invalid_recipient"]);
        Assert.Equal(TimeSpan.FromDays(30), lifetimes["bad_domain"]);
        Assert.True(lifetimes.ContainsKey("manual"));
        Assert.False(lifetimes.ContainsKey("mailbox_full")); // a full mailbox is no reason to stop
        Assert.Empty(SuppressionList.ParseLifetimes(""));
        Assert.Contains("bad_domain", Assert.Throws<FormatException>(() => SuppressionList.ParseLifetimes("bad_domain")).Message);
        Assert.Throws<FormatException>(() => SuppressionList.ParseLifetimes("bad_domain=-1"));
    }

    [Fact]
    public void An_entry_applies_until_it_expires()
    {
        SuppressionEntry Entry(DateTimeOffset? expires) => new("_", "a@example.net", "bad_domain", Now.AddDays(-1), expires, null);
        Assert.True(SuppressionList.Applies(Entry(null), Now));
        Assert.True(SuppressionList.Applies(Entry(Now.AddSeconds(1)), Now));
        Assert.False(SuppressionList.Applies(Entry(Now), Now));
        Assert.False(SuppressionList.Applies(null, Now));
    }
}

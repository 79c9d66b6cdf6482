using Mta.Ingress.Smtp;
using Mta.Ingress.Verification;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The verify cache's lifetimes and bound, and the replies reject_unverified_recipient gives.</summary>
public sealed class AddressVerificationTests
{
    [Fact]
    public void Answers_are_remembered_for_their_own_lifetime_and_unknown_ones_not_at_all()
    {
        var clock = new ManualClock();
        var cache = new ProbeCache(clock, positive: TimeSpan.FromDays(7), negative: TimeSpan.FromHours(3));
        cache.Remember("yes@a.test", new VerifyResult(Verdict.Deliverable, "250"));
        cache.Remember("no@a.test", new VerifyResult(Verdict.Undeliverable, "550"));
        cache.Remember("maybe@a.test", new VerifyResult(Verdict.Unknown, "421"));
        Assert.Equal(Verdict.Deliverable, cache.Find("YES@a.test")?.Verdict);
        Assert.Equal(Verdict.Undeliverable, cache.Find("no@a.test")?.Verdict);
        Assert.Null(cache.Find("maybe@a.test"));
        cache.Remember("ida@a.test", new VerifyResult(Verdict.Deliverable, "250"));
        Assert.Null(cache.Find("\u0131da@a.test")); // dotless i: OrdinalIgnoreCase would take it for "ida"; only ASCII folds

        clock.Now += TimeSpan.FromHours(3);
        Assert.Null(cache.Find("no@a.test")); // asked again after address_verify_negative_refresh_time
        Assert.NotNull(cache.Find("yes@a.test"));
        clock.Now += TimeSpan.FromDays(7);
        Assert.Null(cache.Find("yes@a.test"));
    }

    [Fact]
    public void A_client_sending_random_names_cannot_grow_the_cache_past_its_capacity()
    {
        var clock = new ManualClock();
        var cache = new ProbeCache(clock, TimeSpan.FromDays(7), TimeSpan.FromHours(3));
        for (var i = 0; i < ProbeCache.Capacity + 500; i++) cache.Remember($"r{i}@a.test", new VerifyResult(Verdict.Undeliverable, "550"));
        Assert.Equal(ProbeCache.Capacity, cache.Count);
        // The 500 refused names cost one search for expired entries between them, not one each.
        Assert.Equal(1, cache.Sweeps);
        clock.Now += ProbeCache.SweepInterval / 2;
        cache.Remember("early@a.test", new VerifyResult(Verdict.Undeliverable, "550"));
        Assert.Equal(1, cache.Sweeps);
        Assert.Null(cache.Find("early@a.test"));
        // Once entries have expired, new ones replace them.
        clock.Now += TimeSpan.FromHours(4);
        cache.Remember("new@a.test", new VerifyResult(Verdict.Deliverable, "250"));
        Assert.Equal(2, cache.Sweeps);
        Assert.Equal(1, cache.Count);
    }

    [Theory]
    [InlineData(Verdict.Undeliverable, 550, "550 5.1.1 <u@a.test>: Recipient address rejected: undeliverable address: host x said: 550 5.1.1 no")]
    [InlineData(Verdict.Undeliverable, 450, "450 4.1.1 <u@a.test>: Recipient address rejected: undeliverable address: host x said: 550 5.1.1 no")]
    [InlineData(Verdict.Unknown, 550, "450 4.1.1 <u@a.test>: Recipient address rejected: unverified address: host x said: 550 5.1.1 no")]
    public void Replies_follow_postfixs_codes(Verdict verdict, int rejectCode, string expected)
        => Assert.Equal(expected, SmtpSession.UnverifiedReply("u@a.test", new VerifyResult(verdict, "host x said: 550 5.1.1 no"), rejectCode));
}

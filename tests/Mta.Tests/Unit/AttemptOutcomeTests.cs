using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Delivery;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>What an attempt comes to, from the results alone: reports as RFC 3461 and Postfix send them, and retries.</summary>
public sealed class AttemptOutcomeTests
{
    private static readonly DateTimeOffset Arrival = new(2026, 12, 2, 10, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Backoff = TimeSpan.FromMinutes(5);

    private static DeliveryJob Job(DsnRequest? dsn = null, bool spooled = true, int attempt = 0, bool warned = false) => new()
    {
        MessageId = "M0000000000000001", JobId = "M0000000000000001.0", BlobName = "M0000000000000001", Sender = "s@sender.test",
        Recipients = ["a@x.test", "b@x.test"], NextHop = new NextHop { Transport = Transport.Smtp, Host = "x.test", MxLookup = true },
        ArrivalTime = Arrival, Attempt = attempt, DelayWarned = warned, Dsn = dsn,
        Content = spooled ? null : "Subject: s\r\n\r\nb\r\n"u8.ToArray(),
    };

    private static RecipientResult Result(string r, RecipientStatus status, bool relayed = true, bool passedOn = false, TimeSpan? postponed = null)
        => new(r, status, status switch { RecipientStatus.Delivered => "250 2.0.0 Ok", RecipientStatus.Bounced => "550 5.1.1 no", _ => "451 4.3.0 later" },
            "mx.x.test[192.0.2.1]:25", relayed, passedOn) { PostponedFor = postponed };

    private static AttemptOutcome Decide(DeliveryJob job, TimeSpan sinceArrival, int delayWarning = 0, params RecipientResult[] results)
    {
        var retries = new RetryPolicy(Options.Create(new MtaOptions { DelayWarningSeconds = delayWarning }));
        return AttemptOutcome.Decide(job, results, Arrival + sinceArrival, retries, Backoff, wait => wait + TimeSpan.FromSeconds(1));
    }

    private static DsnRequest Notify(string recipient, string notify)
        => new() { Recipients = new Dictionary<string, RecipientDsn> { [recipient] = new(notify, null) } };

    [Fact]
    public void A_failure_is_reported_by_default_and_the_deferred_recipient_retried_with_its_history()
    {
        var outcome = Decide(Job(), TimeSpan.FromMinutes(1), 0, Result("a@x.test", RecipientStatus.Bounced), Result("b@x.test", RecipientStatus.Deferred));
        var report = Assert.Single(outcome.Reports);
        Assert.Equal(("a@x.test", "failed", "mx.x.test"), (report.Recipients[0].Recipient, report.Recipients[0].Action.Keyword(), report.Recipients[0].RemoteMta));
        Assert.Equal("bounce:M0000000000000001.0.0", report.Reference); // the report's hold on the spooled message
        Assert.Equal(["b@x.test"], outcome.Retry!.Recipients);
        Assert.Equal((1, Backoff, "451 4.3.0 later"), (outcome.Retry.Attempt, outcome.RetryDelay, outcome.RetryReason));
        Assert.EndsWith("relay=mx.x.test[192.0.2.1]:25: 451 4.3.0 later", Assert.Single(outcome.Retry.History!));
    }

    [Fact]
    public void Notify_never_means_no_report_and_an_inline_report_holds_no_reference()
    {
        Assert.Empty(Decide(Job(Notify("a@x.test", "NEVER")), TimeSpan.Zero, 0, Result("a@x.test", RecipientStatus.Bounced)).Reports);
        Assert.Null(Assert.Single(Decide(Job(spooled: false), TimeSpan.Zero, 0, Result("a@x.test", RecipientStatus.Bounced)).Reports).Reference);
    }

    [Theory]
    [InlineData(true, false, "relayed")]   // a next hop without DSN: success reported from here
    [InlineData(false, false, "delivered")] // into a mailbox (Maildir, LMTP)
    [InlineData(true, true, null)]          // the next hop took NOTIFY and reports itself
    public void Success_is_reported_only_where_this_mta_is_the_last_to_know(bool relayed, bool passedOn, string? action)
    {
        var outcome = Decide(Job(Notify("a@x.test", "SUCCESS")), TimeSpan.Zero, 0, Result("a@x.test", RecipientStatus.Delivered, relayed, passedOn));
        Assert.Equal(action, outcome.Reports.SingleOrDefault()?.Recipients.Single().Action.Keyword());
        Assert.Null(outcome.Retry);
        // Without NOTIFY=SUCCESS, nothing.
        Assert.Empty(Decide(Job(), TimeSpan.Zero, 0, Result("a@x.test", RecipientStatus.Delivered, relayed, passedOn)).Reports);
    }

    [Fact]
    public void Past_the_queue_lifetime_a_deferral_is_a_failure_and_nothing_is_retried()
    {
        var outcome = Decide(Job(attempt: 7), TimeSpan.FromDays(5), 0, Result("b@x.test", RecipientStatus.Deferred));
        Assert.True(outcome.Expired);
        Assert.Null(outcome.Retry);
        Assert.Equal("failed", Assert.Single(outcome.Reports).Recipients.Single().Action.Keyword());
    }

    [Fact]
    public void A_delay_warning_goes_once_and_only_when_configured_and_asked_for()
    {
        var deferred = Result("b@x.test", RecipientStatus.Deferred);
        Assert.Empty(Decide(Job(), TimeSpan.FromHours(5), 0, deferred).Reports); // delay_warning_time 0: never
        var warned = Decide(Job(), TimeSpan.FromHours(5), 4 * 3600, deferred);
        var report = Assert.Single(warned.Reports);
        Assert.Equal("delayed", report.Recipients.Single().Action.Keyword());
        Assert.Equal("delay:M0000000000000001.0.0", report.Reference);
        Assert.True(warned.Retry!.DelayWarned);
        Assert.Empty(Decide(Job(warned: true), TimeSpan.FromHours(6), 4 * 3600, deferred).Reports);
        Assert.Empty(Decide(Job(Notify("b@x.test", "FAILURE")), TimeSpan.FromHours(5), 4 * 3600, deferred).Reports);
    }

    [Fact]
    public void Recipients_only_the_shaping_limits_held_back_come_back_after_the_shaping_wait_not_the_backoff()
    {
        var outcome = Decide(Job(), TimeSpan.FromMinutes(1), 0,
            Result("a@x.test", RecipientStatus.Deferred, postponed: TimeSpan.FromSeconds(3)), Result("b@x.test", RecipientStatus.Deferred, postponed: TimeSpan.FromSeconds(9)));
        Assert.Equal(TimeSpan.FromSeconds(10), outcome.RetryDelay);
        Assert.Equal(1, outcome.Retry!.Postponements);
        Assert.Equal(["a@x.test", "b@x.test"], outcome.Retry.Recipients);
    }
}

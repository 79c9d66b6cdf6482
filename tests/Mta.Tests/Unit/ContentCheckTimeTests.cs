using System.Diagnostics;
using Mta.Mail.Cleanup;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>A content check cannot be skipped by making it slow: linear-time matching where possible, and a timeout is a deferral.</summary>
public sealed class ContentCheckTimeTests
{
    private static ContentChecks Load(string rules)
    {
        var file = Path.Combine(TestEnvironment.TempFolder("checks"), "checks");
        File.WriteAllText(file, rules);
        return ContentChecks.Load(file, allowIgnore: false);
    }

    [Fact]
    public void A_pattern_that_would_backtrack_for_ages_runs_in_linear_time_and_still_matches()
    {
        var checks = Load("/^(a+)+$/ REJECT nested quantifiers\n");
        var hostile = new string('a', 50_000) + "!";
        var clock = Stopwatch.StartNew();
        Assert.Null(checks.Match(hostile, new CheckBudget()));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), clock.Elapsed.ToString());
        Assert.Equal(CheckAction.Reject, checks.Match(new string('a', 50_000), new CheckBudget())!.Action);
    }

    [Fact]
    public void A_backtracking_only_pattern_that_times_out_defers_the_message_instead_of_passing_it()
    {
        // A backreference needs the backtracking engine, which has a time limit per match.
        var checks = Load("/^(a|aa)+\\1$/ REJECT slow\n/spam/ REJECT spam\n");
        var hostile = new string('a', 60) + "!";
        var e = Assert.Throws<ContentCheckTimeoutException>(() => checks.Match(hostile + " spam", new CheckBudget()));
        Assert.Contains("checks:1", e.Message);
    }

    [Fact]
    public void A_message_whose_checks_spend_their_budget_is_deferred()
    {
        var checks = Load("/never-there/ REJECT\n");
        var budget = new CheckBudget(TimeSpan.FromMilliseconds(1));
        Assert.Throws<ContentCheckTimeoutException>(() =>
        {
            for (var i = 0; i < 1_000_000; i++) checks.Match(new string('x', 1000), budget);
        });
    }
}

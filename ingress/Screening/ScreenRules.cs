using System.Net;

namespace Mta.Ingress.Screening;

/// <summary>What postscreen concluded about a client.</summary>
/// <param name="Action">Let through (<see cref="ScreenAction.Ignore"/>), refuse its recipients, or drop it.</param>
/// <param name="Reply">The refusal (RCPT's for enforce, the last words for drop); null when let through.</param>
/// <param name="PassUntil">Until when it may skip the tests (every test passed); null: test it again next time.</param>
/// <param name="Findings">What failed, in postscreen's log words (<c>DNSBL rank 3</c>).</param>
public sealed record ScreenVerdict(ScreenAction Action, string? Reply, DateTimeOffset? PassUntil, IReadOnlyList<string> Findings);

/// <summary>What the early tests found about one connection, for <see cref="ScreenRules.Decide"/>.</summary>
/// <param name="Client">The client's address.</param>
/// <param name="Pregreet">It spoke before the greeting was over.</param>
/// <param name="Score">Its combined DNSBL score (of the answers in by the end of the pause).</param>
/// <param name="ListedBy">The list with the largest contribution to a positive score.</param>
/// <param name="DnsblTtl">How long the DNSBL answer holds (clamped to the minimum and maximum).</param>
public sealed record ScreenFacts(IPAddress Client, bool Pregreet, int Score, string? ListedBy, TimeSpan DnsblTtl);

/// <summary>
/// postscreen's decision after the greeting pause (postscreen_early.c), apart from the waiting and the talking: the
/// DNSBL threshold and actions, the pre-greet action, the allowlist, and how long a pass is remembered.
/// </summary>
public static class ScreenRules
{
    /// <summary>The verdict on <paramref name="facts"/> at <paramref name="now"/>.</summary>
    public static ScreenVerdict Decide(PostscreenSettings settings, ScreenFacts facts, DateTimeOffset now)
    {
        var findings = new List<string>();
        ScreenAction action = ScreenAction.Ignore;
        string? reply = null;
        var failed = false;
        if (facts.Pregreet)
        {
            failed = true;
            findings.Add("PREGREET");
            (action, reply) = Worst(action, reply, settings.GreetAction, "5.5.1 Protocol error");
        }
        if (settings.Dnsbl && facts.Score >= settings.Threshold)
        {
            failed = true;
            findings.Add($"DNSBL rank {facts.Score}");
            (action, reply) = Worst(action, reply, settings.DnsblAction,
                $"5.7.1 Service unavailable; client [{facts.Client}] blocked using {facts.ListedBy}");
        }
        if (failed) return new ScreenVerdict(action, reply, null, findings);
        // Passed: remembered until the earliest of the tests' own lifetimes.
        var until = now + settings.GreetTtl;
        if (settings.Dnsbl && now + facts.DnsblTtl < until) until = now + facts.DnsblTtl;
        return new ScreenVerdict(ScreenAction.Ignore, null, until, findings);
    }

    /// <summary>Whether the score alone lets the client skip the rest of the pause (postscreen_dnsbl_allowlist_threshold).</summary>
    public static bool Allowlisted(PostscreenSettings settings, int score)
        => settings.Allowlisting && score < settings.Threshold && score <= settings.AllowlistThreshold;

    // Drop outranks enforce outranks ignore; the later test's reply stands among equals (the DNSBL one says more).
    private static (ScreenAction, string?) Worst(ScreenAction current, string? reply, ScreenAction test, string text)
    {
        if (test == ScreenAction.Ignore || test < current) return (current, reply);
        return (test, $"{(test == ScreenAction.Drop ? "521" : "550")} {text}");
    }
}

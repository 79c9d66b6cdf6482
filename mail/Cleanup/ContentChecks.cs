using System.Text.RegularExpressions;
using Mta.Mail.Configuration;
using Mta.Mail.Rewriting;

namespace Mta.Mail.Cleanup;

/// <summary>What a matching header or body check does (Postfix header_checks(5) actions).</summary>
public enum CheckAction
{
    /// <summary>Refuse the message: every recipient is bounced with <c>5.7.1</c> and the check's text.</summary>
    Reject,
    /// <summary>Accept and drop the message silently (logged).</summary>
    Discard,
    /// <summary>Keep the message on the <c>hold</c> queue until an operator releases or deletes it.</summary>
    Hold,
    /// <summary>Log the match and go on.</summary>
    Warn,
    /// <summary>Remove the header line (header checks only).</summary>
    Ignore,
    /// <summary>Stop checking this line (Postfix <c>DUNNO</c>/<c>OK</c>).</summary>
    Dunno,
}

/// <summary>A check that matched: its action, its optional text, and where it is written.</summary>
/// <param name="Action">What to do.</param>
/// <param name="Text">The text after the action (the reason), possibly empty.</param>
/// <param name="Where">File and line of the rule, for the log.</param>
public sealed record CheckMatch(CheckAction Action, string Text, string Where);

/// <summary>
/// A Postfix regexp table of content checks (header_checks or body_checks): one <c>/pattern/flags ACTION text</c>
/// per line, <c>!/pattern/</c> for "does not match", <c>#</c> comments. Patterns are case-insensitive unless the
/// <c>i</c> flag turns that off, as in regexp_table(5); the first rule that matches decides. Patterns run on .NET's
/// non-backtracking engine (linear in the input) unless they need what only backtracking offers (backreferences,
/// lookarounds); those have a time limit per match. Every message has a budget for all its matches
/// (<see cref="CheckBudget"/>). A match that runs out of time is a temporary failure, never a pass: a check that can be
/// timed out would be one an attacker can skip.
/// </summary>
public sealed class ContentChecks
{
    private sealed record Rule(Regex Pattern, bool Negated, CheckAction Action, string Text, string Where);

    private readonly WatchedFile<IReadOnlyList<Rule>>? _file;

    private ContentChecks(WatchedFile<IReadOnlyList<Rule>>? file) => _file = file;

    /// <summary>No checks.</summary>
    public static ContentChecks None { get; } = new(null);

    /// <summary>True when the table has rules.</summary>
    public bool Any => _file is not null && _file.Value.Count > 0;

    /// <summary>Loads a checks file (reloaded when it changes); <paramref name="allowIgnore"/> for header checks only.</summary>
    public static ContentChecks Load(string? path, bool allowIgnore, Action<string>? reloadFailed = null)
        => string.IsNullOrEmpty(path) ? None
            : new ContentChecks(new WatchedFile<IReadOnlyList<Rule>>(path, (lines, source) => Parse(lines, source, allowIgnore), reloadFailed));

    private static IReadOnlyList<Rule> Parse(string[] lines, string source, bool allowIgnore)
        => RegexpTable.Parse(lines, source, "ACTION").Select(entry => RuleOf(entry, allowIgnore)).ToList();

    // An entry's result is the action and its text: "REJECT some reason".
    private static Rule RuleOf(RegexpEntry entry, bool allowIgnore)
    {
        var space = entry.Result.IndexOfAny([' ', '\t']);
        var word = (space < 0 ? entry.Result : entry.Result[..space]).ToUpperInvariant();
        var text = space < 0 ? "" : entry.Result[(space + 1)..].Trim();
        var known = $"REJECT, DISCARD, HOLD, WARN{(allowIgnore ? ", IGNORE" : "")}, DUNNO";
        var action = word switch
        {
            "REJECT" => CheckAction.Reject,
            "DISCARD" => CheckAction.Discard,
            "HOLD" => CheckAction.Hold,
            "WARN" => CheckAction.Warn,
            "IGNORE" when allowIgnore => CheckAction.Ignore,
            "DUNNO" or "OK" => CheckAction.Dunno,
            "" => throw new FormatException($"{entry.Where}: missing action ({known})"),
            _ => throw new FormatException($"{entry.Where}: unknown action '{word}' (known: {known})"),
        };
        return new Rule(entry.Pattern, entry.Negated, action, text, entry.Where);
    }

    /// <summary>
    /// The first rule that matches <paramref name="input"/> (a whole logical header line, or one body line), or null.
    /// A <see cref="CheckAction.Dunno"/> match also ends the search for this input. Throws
    /// <see cref="ContentCheckTimeoutException"/> when a match runs out of time or the message's budget is spent.
    /// </summary>
    public CheckMatch? Match(string input, CheckBudget budget)
    {
        if (_file is null) return null;
        foreach (var rule in _file.Value)
        {
            budget.ThrowIfSpent(rule.Where);
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            bool matched;
            try { matched = rule.Pattern.IsMatch(input) != rule.Negated; }
            catch (RegexMatchTimeoutException) { throw new ContentCheckTimeoutException(rule.Where); }
            finally { budget.Spend(System.Diagnostics.Stopwatch.GetElapsedTime(started)); }
            if (matched) return new CheckMatch(rule.Action, rule.Text, rule.Where);
        }
        return null;
    }
}

/// <summary>The time one message's content checks may take together (header and body checks of one pass).</summary>
public sealed class CheckBudget(TimeSpan total)
{
    /// <summary>The budget per message: far above what linear patterns need, far below a function or session timeout.</summary>
    public static readonly TimeSpan PerMessage = TimeSpan.FromSeconds(2);

    private TimeSpan _spent;

    /// <summary>A budget of <see cref="PerMessage"/>.</summary>
    public CheckBudget() : this(PerMessage) { }

    /// <summary>Counts time spent matching.</summary>
    public void Spend(TimeSpan elapsed) => _spent += elapsed;

    /// <summary>Throws when the budget is spent; <paramref name="where"/> names the rule about to run.</summary>
    public void ThrowIfSpent(string where)
    {
        if (_spent > total) throw new ContentCheckTimeoutException(where, $"the content checks' budget of {total.TotalSeconds} s per message is spent");
    }
}

/// <summary>A content check could not finish in time: the message's fate is not known, so it is deferred (4xx), never passed.</summary>
public sealed class ContentCheckTimeoutException(string where, string? why = null)
    : Exception($"content check {where}: {why ?? "a match took too long"}");

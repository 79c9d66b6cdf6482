using System.Text.RegularExpressions;
using Mta.Mail.Configuration;
using Mta.Mail.Rewriting;

namespace Mta.Mail.Classification;

/// <summary>
/// Puts a failed delivery's reply into a <see cref="BounceCategory"/>. In order: the operator's rules
/// (<see cref="MtaOptions.BounceClassificationFile"/>, a regexp table of <c>/pattern/ category</c> lines, for providers
/// that misuse codes), then the enhanced status code (RFC 3463 and its additions: RFC 3886, 7372, 7505, 8689) when it
/// says something specific, then words common to the large providers' replies when the code is missing or generic
/// (<c>X.0.0</c>, <c>X.7.1</c> for everything), then the basic code (<c>421</c> is a request to slow down). Pure but
/// for the rules file, which is read again when it changes.
/// </summary>
public sealed class BounceClassifier
{
    private readonly WatchedFile<IReadOnlyList<(RegexpEntry Entry, BounceCategory Category)>>? _rules;

    private BounceClassifier(WatchedFile<IReadOnlyList<(RegexpEntry, BounceCategory)>>? rules) => _rules = rules;

    /// <summary>The built-in rules alone.</summary>
    public static BounceClassifier BuiltIn { get; } = new(null);

    /// <summary>The built-in rules after the operator's file (none when <paramref name="path"/> is empty).</summary>
    public static BounceClassifier Load(string? path, Action<string>? reloadFailed = null)
        => string.IsNullOrEmpty(path) ? BuiltIn : new(new WatchedFile<IReadOnlyList<(RegexpEntry, BounceCategory)>>(path, Parse, reloadFailed));

    private static IReadOnlyList<(RegexpEntry, BounceCategory)> Parse(string[] lines, string source)
        => RegexpTable.Parse(lines, source, "CATEGORY").Select(entry => (entry, BounceCategories.Parse(entry.Result)
            ?? throw new FormatException($"{entry.Where}: unknown category '{entry.Result}' (known: {string.Join(", ", Enum.GetValues<BounceCategory>().Select(c => c.Name()))})"))).ToList();

    // The reply's basic code where it starts ("550 ", "552-"), and the first enhanced code in its first words.
    private static readonly Regex Basic = new(@"^\s*([245][0-9]{2})(?:[ -]|$)", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
    private static readonly Regex Enhanced = new(@"(?<![0-9.])[245]\.([0-9]{1,3})\.([0-9]{1,3})(?![0-9.])", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));

    /// <summary>The category of <paramref name="reply"/>, a failure's reply or reason as the delivery log writes it.</summary>
    public BounceCategory Classify(string reply)
    {
        foreach (var (entry, category) in _rules?.Value ?? [])
            if (entry.Applies(reply)) return category;
        foreach (var (quirk, category) in Quirks)
            if (quirk.IsMatch(reply)) return category;
        var (basic, subject, detail) = CodesOf(reply);
        if (subject is { } s && ByCode(s, detail!.Value) is { } byCode) return byCode;
        if (ByWords(reply) is { } byWords) return byWords;
        if (subject is { } generic && BySubject(generic) is { } bySubject) return bySubject;
        return basic == 421 ? BounceCategory.RateLimited : BounceCategory.Other;
    }

    /// <summary>The basic reply code and the enhanced code's subject and detail, where the text has them.</summary>
    public static (int? Basic, int? Subject, int? Detail) CodesOf(string reply)
    {
        var head = reply.Length > 300 ? reply[..300] : reply;
        var basic = Basic.Match(head) is { Success: true } b ? int.Parse(b.Groups[1].Value) : (int?)null;
        return Enhanced.Match(head) is { Success: true } e ? (basic, int.Parse(e.Groups[1].Value), int.Parse(e.Groups[2].Value)) : (basic, null, null);
    }

    /// <summary>What <c>X.subject.detail</c> says, or null when it says nothing specific (<c>X.7.1</c> is any refusal).</summary>
    public static BounceCategory? ByCode(int subject, int detail) => (subject, detail) switch
    {
        (1, 1 or 3 or 6) => BounceCategory.InvalidRecipient,
        (1, 2 or 10) => BounceCategory.BadDomain,
        (2, 1) => BounceCategory.InvalidRecipient,
        (2, 2) => BounceCategory.MailboxFull,
        (2, 3) or (3, 4) => BounceCategory.MessageTooLarge,
        (4, 3) => BounceCategory.DnsFailure,
        (4, 1 or 2 or 7) => BounceCategory.ConnectionFailure,
        (4, 5) => BounceCategory.RateLimited,
        (7, 4 or 5 or 10 or 11 or 30) => BounceCategory.TlsFailure,
        (7, 8 or 9 or 12 or (>= 20 and <= 27) or 29) => BounceCategory.AuthenticationFailure,
        (7, 28) => BounceCategory.RateLimited,
        (7, 2 or 3 or 6 or 7 or 13 or 14 or 15 or 16 or 17 or 18 or 19) => BounceCategory.PolicyBlock,
        _ => null,
    };

    /// <summary>What the subject alone says, when neither the detail nor the words did.</summary>
    public static BounceCategory? BySubject(int subject) => subject switch
    {
        1 => BounceCategory.InvalidRecipient,
        4 => BounceCategory.ConnectionFailure,
        7 => BounceCategory.PolicyBlock,
        _ => null,
    };

    // Replies whose code says one thing and whose text another, from the providers' own documentation: the text wins.
    private static readonly (Regex Quirk, BounceCategory Category)[] Quirks =
    [
        (Words_(@"5\.4\.1 .*recipient address rejected: access denied"), BounceCategory.InvalidRecipient), // Microsoft 365: no such recipient
        (Words_(@"5\.7\.9 .*not accepted for policy reasons"), BounceCategory.PolicyBlock),                 // Yahoo: a policy refusal, not a login
    ];

    private static readonly (Regex Words, BounceCategory Category)[] Words =
    [
        (Words_(@"rate.?limited|ratelimit|too many (messages|connections|recipients|emails)|too much mail|unexpected volume|slow down|sending rate|throttl|server busy|greylist|graylist|\bTSS?0[1-8]\b|RP-00[1-3]|exceeded .*rate"), BounceCategory.RateLimited),
        (Words_(@"over ?quota|quota exceeded|mailbox (is )?full|insufficient (disk|storage)|exceeded (its|the) storage|out of storage"), BounceCategory.MailboxFull),
        (Words_(@"spf|dkim|dmarc|unauthenticated|not authenticated|authentication (failed|required|check)|ptr record|reverse dns"), BounceCategory.AuthenticationFailure),
        (Words_(@"(message|mail) (size|is too (large|big))|size limit|too (large|big)|exceeds? .*size"), BounceCategory.MessageTooLarge),
        (Words_(@"\btls\b|starttls|certificate|encryption (is )?required"), BounceCategory.TlsFailure),
        (Words_(@"user unknown|unknown (user|recipient)|no such (user|mailbox|recipient)|(does not|doesn't|does n't) exist|does not have an? .*account|doesn't have an? .*account|mailbox (not found|unavailable|disabled)|invalid (recipient|mailbox|address)|address unknown|account (is )?(disabled|inactive|suspended)|not a valid (recipient|mailbox)|unrouteable address|no mailbox"), BounceCategory.InvalidRecipient),
        (Words_(@"domain (not found|does not exist|doesn't exist)|host not found|no mx|null mx|nxdomain|name service error.*host not found|does not accept mail"), BounceCategory.BadDomain),
        (Words_(@"name service error|temporary (dns|lookup) failure|servfail|dns (error|failure|timeout)"), BounceCategory.DnsFailure),
        (Words_(@"spam|block ?list|black ?list|blocked|spamhaus|barracuda|reputation|\bpolicy\b|not (allowed|authorized|permitted)|denied|refused|rejected for policy|prohibited|abuse"), BounceCategory.PolicyBlock),
        (Words_(@"connection (refused|timed out|reset)|connect to .*: |lost connection|timed out|network is unreachable|no route to host"), BounceCategory.ConnectionFailure),
    ];

    private static Regex Words_(string pattern) => RegexpTable.Compile(pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    /// <summary>The first built-in word rule that matches, or null.</summary>
    public static BounceCategory? ByWords(string reply)
    {
        foreach (var (words, category) in Words)
            if (words.IsMatch(reply)) return category;
        return null;
    }
}

using Mta.Mail.Configuration;

namespace Mta.Ingress.Screening;

/// <summary>What a failed test leads to (Postfix's postscreen actions).</summary>
public enum ScreenAction
{
    /// <summary>Logged and let through, not remembered as passed: the test runs again next time.</summary>
    Ignore,

    /// <summary>The session goes on, and every RCPT gets the test's 5xx.</summary>
    Enforce,

    /// <summary>The test's <c>521</c> at once, and the connection closed.</summary>
    Drop,
}

/// <summary>
/// postscreen's settings as the ingress uses them, from the <c>Ingress:Postscreen*</c> options with postscreen's names
/// and defaults. Built once the validator has passed them.
/// </summary>
public sealed record PostscreenSettings(
    bool Enabled,
    TimeSpan GreetWait,
    ScreenAction GreetAction,
    TimeSpan GreetTtl,
    IReadOnlyList<DnsblSite> Sites,
    int Threshold,
    int AllowlistThreshold,
    ScreenAction DnsblAction,
    TimeSpan DnsblTimeout,
    TimeSpan DnsblMinTtl,
    TimeSpan DnsblMaxTtl)
{
    /// <summary>The settings <paramref name="o"/> gives; throws on a value the validator refuses.</summary>
    public static PostscreenSettings From(IngressOptions o)
    {
        if (Problems(o).FirstOrDefault() is { } problem) throw new FormatException(problem.Message);
        return new PostscreenSettings(o.Postscreen, TimeSpan.FromSeconds(o.PostscreenGreetWaitSeconds), Action(o.PostscreenGreetAction)!.Value,
            TimeSpan.FromSeconds(o.PostscreenGreetTtlSeconds), DnsblSite.ParseList(o.PostscreenDnsblSites), o.PostscreenDnsblThreshold,
            o.PostscreenDnsblAllowlistThreshold, Action(o.PostscreenDnsblAction)!.Value, TimeSpan.FromSeconds(o.PostscreenDnsblTimeoutSeconds),
            TimeSpan.FromSeconds(o.PostscreenDnsblMinTtlSeconds), TimeSpan.FromSeconds(o.PostscreenDnsblMaxTtlSeconds));
    }

    /// <summary>Whether the DNSBL test runs (some sites are listed).</summary>
    public bool Dnsbl => Sites.Count > 0;

    /// <summary>Whether a negative combined score lets a client skip the greeting pause (postscreen's allowlist threshold below 0).</summary>
    public bool Allowlisting => AllowlistThreshold < 0;

    private static ScreenAction? Action(string text) => text switch
    {
        "ignore" => ScreenAction.Ignore,
        "enforce" => ScreenAction.Enforce,
        "drop" => ScreenAction.Drop,
        _ => null,
    };

    /// <summary>What is wrong with the postscreen settings in <paramref name="o"/>.</summary>
    public static IEnumerable<ConfigFinding> Problems(IngressOptions o)
    {
        if (Action(o.PostscreenGreetAction) is null)
            yield return ConfigFinding.Error("Ingress:PostscreenGreetAction", "postscreen_greet_action", $"'{o.PostscreenGreetAction}' is not ignore, enforce or drop");
        if (Action(o.PostscreenDnsblAction) is null)
            yield return ConfigFinding.Error("Ingress:PostscreenDnsblAction", "postscreen_dnsbl_action", $"'{o.PostscreenDnsblAction}' is not ignore, enforce or drop");
        string? sites = null;
        try { DnsblSite.ParseList(o.PostscreenDnsblSites); }
        catch (FormatException e) { sites = e.Message; }
        if (sites is not null) yield return ConfigFinding.Error("Ingress:PostscreenDnsblSites", "postscreen_dnsbl_sites", sites);
        foreach (var (name, postfix, value) in new[]
                 {
                     ("PostscreenGreetWaitSeconds", "postscreen_greet_wait", o.PostscreenGreetWaitSeconds),
                     ("PostscreenGreetTtlSeconds", "postscreen_greet_ttl", o.PostscreenGreetTtlSeconds),
                     ("PostscreenDnsblTimeoutSeconds", "postscreen_dnsbl_timeout", o.PostscreenDnsblTimeoutSeconds),
                     ("PostscreenDnsblMinTtlSeconds", "postscreen_dnsbl_min_ttl", o.PostscreenDnsblMinTtlSeconds),
                     ("PostscreenDnsblMaxTtlSeconds", "postscreen_dnsbl_max_ttl", o.PostscreenDnsblMaxTtlSeconds),
                 }.Where(s => s.Item3 <= 0))
            yield return ConfigFinding.Error($"Ingress:{name}", postfix, $"{value} is not a positive number of seconds");
        if (o.PostscreenDnsblMaxTtlSeconds < o.PostscreenDnsblMinTtlSeconds)
            yield return ConfigFinding.Error("Ingress:PostscreenDnsblMaxTtlSeconds", "postscreen_dnsbl_max_ttl", "is below Ingress:PostscreenDnsblMinTtlSeconds");
    }
}

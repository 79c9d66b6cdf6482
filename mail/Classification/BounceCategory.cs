namespace Mta.Mail.Classification;

/// <summary>Why a delivery failed, as a bulk sender acts on it (suppress the address, slow down, fix the setup).</summary>
public enum BounceCategory
{
    /// <summary>None of the others, or nothing to tell (a delivery, a reply that says nothing).</summary>
    Other,

    /// <summary>The mailbox does not exist or is disabled (X.1.1, X.1.3, X.1.6, X.2.1): suppress the address.</summary>
    InvalidRecipient,

    /// <summary>The domain does not take mail (X.1.2, X.1.10 null MX, no such domain).</summary>
    BadDomain,

    /// <summary>The mailbox is over its quota (X.2.2).</summary>
    MailboxFull,

    /// <summary>Refused by the receiver's policy: spam, block lists, reputation, content (X.7.1, X.7.0).</summary>
    PolicyBlock,

    /// <summary>Too much too fast: the receiver asks for less (X.4.5, X.7.28, 421, "rate limited").</summary>
    RateLimited,

    /// <summary>Sender authentication failed: SPF, DKIM, DMARC, reverse DNS, or our login at a relay (X.7.8, X.7.20–X.7.27).</summary>
    AuthenticationFailure,

    /// <summary>The message is larger than the receiver takes (X.2.3, X.3.4).</summary>
    MessageTooLarge,

    /// <summary>A name could not be resolved for now (X.4.3, X.4.4 with a DNS reason).</summary>
    DnsFailure,

    /// <summary>TLS was required and could not be had, or failed (X.7.10, X.7.11, X.7.5, X.7.4, X.7.30).</summary>
    TlsFailure,

    /// <summary>The next hop could not be reached or dropped the connection (X.4.1, X.4.2, X.4.7 expiry).</summary>
    ConnectionFailure,
}

/// <summary>The names categories have in events, metrics, rules files and the suppression list.</summary>
public static class BounceCategories
{
    /// <summary><c>invalid_recipient</c>, <c>rate_limited</c>, …</summary>
    public static string Name(this BounceCategory category) => category switch
    {
        BounceCategory.InvalidRecipient => "invalid_recipient",
        BounceCategory.BadDomain => "bad_domain",
        BounceCategory.MailboxFull => "mailbox_full",
        BounceCategory.PolicyBlock => "policy_block",
        BounceCategory.RateLimited => "rate_limited",
        BounceCategory.AuthenticationFailure => "authentication_failure",
        BounceCategory.MessageTooLarge => "message_too_large",
        BounceCategory.DnsFailure => "dns_failure",
        BounceCategory.TlsFailure => "tls_failure",
        BounceCategory.ConnectionFailure => "connection_failure",
        _ => "other",
    };

    /// <summary>The category named <paramref name="name"/> (as <see cref="Name"/> writes it), or null.</summary>
    public static BounceCategory? Parse(string name)
        => Enum.GetValues<BounceCategory>().Cast<BounceCategory?>().FirstOrDefault(c => c!.Value.Name() == name.Trim().ToLowerInvariant());
}

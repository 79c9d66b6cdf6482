namespace Mta.Mail.Contracts;

/// <summary>The delivery transports the system knows.</summary>
public enum Transport
{
    /// <summary>SMTP to a host (or to the MX hosts of a domain).</summary>
    Smtp,

    /// <summary>Delivery into a Maildir on the local data directory.</summary>
    Local,

    /// <summary>LMTP (RFC 2033) to a mailbox server, with a reply per recipient after DATA.</summary>
    Lmtp,
}

/// <summary>
/// A routing decision for a recipient, in Postfix's transport(5) terms:
/// <c>smtp:[host]:port</c> (no MX lookup), <c>smtp:domain</c> (MX lookup), or <c>local:</c>.
/// </summary>
public sealed record NextHop
{
    /// <summary>The transport that delivers.</summary>
    public required Transport Transport { get; init; }

    /// <summary>Domain whose MX hosts are looked up, or the host itself when <see cref="MxLookup"/> is false. Empty for local.</summary>
    public string Host { get; init; } = "";

    /// <summary>TCP port; null means the transport's default (25 for SMTP).</summary>
    public int? Port { get; init; }

    /// <summary>Whether <see cref="Host"/> is a domain whose MX records are looked up (Postfix: unbracketed).</summary>
    public bool MxLookup { get; init; }

    /// <summary>
    /// TLS from the first octet, before the greeting (RFC 8314 "implicit TLS", port 465; Postfix
    /// <c>smtp_tls_wrappermode = yes</c>), written <c>smtps:</c>.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool ImplicitTls { get; init; }

    /// <summary>The next hop in transport(5) syntax, for logs and grouping.</summary>
    public override string ToString() => Transport switch
    {
        Transport.Local => "local:",
        Transport.Lmtp => "lmtp:[" + Host + "]" + (Port is int p ? ":" + p : ""),
        _ => (ImplicitTls ? "smtps:" : "smtp:") + (MxLookup ? Host : "[" + Host + "]") + (Port is int q ? ":" + q : ""),
    };
}

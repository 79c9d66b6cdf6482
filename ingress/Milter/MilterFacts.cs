namespace Mta.Ingress.Milter;

/// <summary>What the session knows that macros are made of, read when an event is sent.</summary>
public sealed class MilterFacts
{
    /// <summary><c>j</c>: this host's name.</summary>
    public string Hostname { get; init; } = "";
    /// <summary><c>{daemon_name}</c> (Postfix's <c>milter_macro_daemon_name</c>).</summary>
    public string DaemonName { get; init; } = "";
    /// <summary><c>{daemon_addr}</c>, <c>{daemon_port}</c>.</summary>
    public System.Net.IPEndPoint? Local { get; init; }
    /// <summary><c>{client_addr}</c>, <c>{client_port}</c>.</summary>
    public System.Net.IPEndPoint? Client { get; init; }
    /// <summary><c>{tls_version}</c> and <c>{cipher}</c>, once TLS is up.</summary>
    public (string Version, string Cipher)? Tls { get; set; }
    /// <summary><c>{auth_authen}</c>: the login, once authenticated.</summary>
    public string? Login { get; set; }
    /// <summary><c>{auth_type}</c>: the SASL mechanism used.</summary>
    public string? AuthMechanism { get; set; }
    /// <summary><c>i</c>: the queue id, from DATA on.</summary>
    public string? QueueId { get; set; }
    /// <summary><c>{mail_addr}</c>: the sender of the transaction.</summary>
    public string? Sender { get; set; }
    /// <summary><c>{rcpt_addr}</c>: the recipient of the RCPT being asked about.</summary>
    public string? Recipient { get; set; }

    /// <summary>The value of the macro <paramref name="name"/>, or null when it has none now.</summary>
    public string? Value(string name) => name switch
    {
        "j" => Hostname,
        "{daemon_name}" => DaemonName,
        "{daemon_addr}" => Local?.Address.ToString(),
        "{daemon_port}" => Local?.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "v" => "Mta.Ingress",
        "_" => Client is null ? null : $"unknown [{Client.Address}]",
        "{client_addr}" => Client?.Address.ToString(),
        "{client_port}" => Client?.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "{client_name}" or "{client_ptr}" => Client is null ? null : "unknown", // no reverse lookup is made
        "{tls_version}" => Tls?.Version,
        "{cipher}" => Tls?.Cipher,
        "{auth_type}" => Login is null ? null : AuthMechanism,
        "{auth_authen}" => Login,
        "i" => QueueId,
        "{mail_addr}" => Sender,
        "{mail_host}" => Sender is null ? null : Host(Sender),
        "{mail_mailer}" => Sender is null ? null : "smtp",
        "{rcpt_addr}" => Recipient,
        "{rcpt_host}" => Recipient is null ? null : Host(Recipient),
        "{rcpt_mailer}" => Recipient is null ? null : "smtp",
        _ => null,
    };

    private static string Host(string address) => address.LastIndexOf('@') is var at and >= 0 ? address[(at + 1)..] : "";
}

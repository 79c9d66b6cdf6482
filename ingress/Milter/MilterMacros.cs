namespace Mta.Ingress.Milter;

/// <summary>
/// Which macros go with which event (Postfix's <c>milter_*_macros</c>, with its defaults), and their values from what
/// the session knows. A milter may ask for others with SMFIR_SETSYMLIST; a macro without a value is not sent.
/// </summary>
public static class MilterMacros
{
    /// <summary>Postfix's default macro names per event, keyed as <c>Ingress:MilterMacros</c> is.</summary>
    public static readonly IReadOnlyDictionary<string, string> Defaults = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["Connect"] = "j {daemon_name} {daemon_addr} v _",
        ["Helo"] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
        ["Mail"] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
        ["Rcpt"] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
        ["Data"] = "i",
        ["EndOfHeader"] = "i",
        ["EndOfData"] = "i",
        ["Unknown"] = "",
    };

    /// <summary>The event each <see cref="Defaults"/> key is for.</summary>
    public static readonly IReadOnlyDictionary<string, MilterCommand> Events = new Dictionary<string, MilterCommand>(StringComparer.OrdinalIgnoreCase)
    {
        ["Connect"] = MilterCommand.Connect, ["Helo"] = MilterCommand.Helo, ["Mail"] = MilterCommand.Mail, ["Rcpt"] = MilterCommand.Rcpt,
        ["Data"] = MilterCommand.Data, ["EndOfHeader"] = MilterCommand.EndOfHeader, ["EndOfData"] = MilterCommand.EndOfMessage,
        ["Unknown"] = MilterCommand.Unknown,
    };

    /// <summary>The macro names per event: Postfix's defaults with the configured lists in their place.</summary>
    public static IReadOnlyDictionary<MilterCommand, string[]> Names(IReadOnlyDictionary<string, string>? configured)
    {
        var names = new Dictionary<MilterCommand, string[]>();
        foreach (var (key, list) in Defaults)
        {
            var chosen = configured is not null && configured.TryGetValue(key, out var given) ? given : list;
            names[Events[key]] = chosen.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries);
        }
        return names;
    }

    /// <summary>
    /// SMFIR_SETSYMLIST's stage numbers (libmilter's SMFIM_*): connect, HELO, MAIL, RCPT, DATA, end of message, end of header.
    /// </summary>
    public static MilterCommand? Stage(int stage) => stage switch
    {
        0 => MilterCommand.Connect, 1 => MilterCommand.Helo, 2 => MilterCommand.Mail, 3 => MilterCommand.Rcpt,
        4 => MilterCommand.Data, 5 => MilterCommand.EndOfMessage, 6 => MilterCommand.EndOfHeader,
        _ => null,
    };

    /// <summary>Name and value of each macro in <paramref name="names"/> that has one now.</summary>
    public static IEnumerable<KeyValuePair<string, string>> Values(IEnumerable<string> names, Func<string, string?> value)
    {
        foreach (var name in names)
            if (value(name) is { } v) yield return new(name, v);
    }
}

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

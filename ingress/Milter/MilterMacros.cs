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

using System.Net;
using Microsoft.Extensions.Logging;

namespace Mta.Ingress.Smtp;

// EHLO and HELO: the greeting, the extensions offered, and Postfix's check of the name given.
public sealed partial class SmtpSession
{
    private Next Hello(string verb, string arg)
    {
        if (arg.Length == 0) return Refuse($"501 Syntax: {verb} hostname");
        if (options.RejectInvalidHelo && !relay.IsTrusted(client) && !ValidHelo(arg))
        {
            log.LogInformation("reject: {Verb} from [{Client}]: 501 5.5.2 <{Helo}>: Helo command rejected: Invalid name", verb, client, Sanitize(arg));
            return Refuse($"501 5.5.2 <{Sanitize(arg)}>: Helo command rejected: Invalid name");
        }
        _helo = Sanitize(arg);
        _esmtp = verb == "EHLO";
        _pipelining = _esmtp;
        ResetTransaction();
        if (_milters is null) return Greeted();
        // Postfix's rule: a milter's refusal of HELO is answered 250 and stands for every MAIL after it; a 421 ends the session.
        _pendingStep = async ct =>
        {
            if (MilterRefusal(await _milters.HeloAsync(_helo, ct), verb) is { } refused && _quit) Reply(refused);
            else Greeted();
        };
        return Next.Command;
    }

    /// <summary>The answer to a HELO or EHLO that passed: the name, and for EHLO the extensions on offer.</summary>
    private Next Greeted()
    {
        if (!_esmtp) return Answer($"250 {hostname}");
        var lines = new List<string> { hostname, "PIPELINING", $"SIZE {options.MessageSizeLimit}", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8", "CHUNKING" };
        if (relay.IsTrusted(client)) lines.Add("XVERP"); // offered to those allowed it, as Postfix does
        if (!_tls && certificates.Configured) lines.Add("STARTTLS");
        if (_tls && AuthOffered && _user is null) lines.Add("AUTH PLAIN LOGIN"); // never before TLS
        Reply(lines.Select((l, i) => (i == lines.Count - 1 ? "250 " : "250-") + l).ToArray());
        return Next.Command;
    }

    /// <summary>A host name (letters, digits, hyphens, dots; at least one dot or a single label) or an address literal.</summary>
    internal static bool ValidHelo(string name)
    {
        if (name.Length > 255) return false;
        if (name.StartsWith('[') && name.EndsWith(']'))
        {
            var literal = name[1..^1];
            if (literal.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase)) literal = literal[5..];
            return IPAddress.TryParse(literal, out _);
        }
        var host = name.TrimEnd('.');
        if (IPAddress.TryParse(host, out _) && host.Count(c => c == '.') == 3) return false; // an address must be bracketed
        return host.Length > 0 && host.Split('.').All(label => label.Length is > 0 and <= 63
            && label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_') && label[0] != '-' && label[^1] != '-');
    }
}

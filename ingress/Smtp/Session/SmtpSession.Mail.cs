using Microsoft.Extensions.Logging;
using Mta.Mail.Routing;

namespace Mta.Ingress.Smtp;

// MAIL FROM: the sender, its parameters, and whether a login may send as it.
public sealed partial class SmtpSession
{
    private Next Mail(string arg)
    {
        MailFrom(arg);
        return Next.Command;
    }

    private void MailFrom(string arg)
    {
        if (_helo is null) { Error("503 5.5.1 Error: send HELO/EHLO first"); return; }
        if (_mail is not null) { Error("503 5.5.1 Error: nested MAIL command"); return; }
        if (listener != Listener.Mx && _user is null) { Error("530 5.7.0 Authentication required"); return; }
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) { Error("501 5.5.4 Syntax: MAIL FROM:<address>"); return; }
        if (!Paths.TryParse(arg[5..], out var address, out var parameters, out var problem))
        {
            Error($"501 5.1.7 Bad sender address syntax{problem}");
            return;
        }
        if (MailParameters.Parse(parameters, _esmtp, options.MessageSizeLimit, out var refusal) is not { } given)
        {
            Error(refusal);
            return;
        }
        if (given.Verp is not null && !relay.IsTrusted(client))
        {
            // Postfix's smtpd_authorized_verp_clients, by default $mynetworks.
            Error("550 5.7.1 Error: XVERP is not permitted for this client");
            return;
        }
        if (!given.SmtpUtf8 && !IsAscii(address))
        {
            Error("553 5.6.7 Must declare SMTPUTF8 to send unicode address");
            return;
        }
        if (Address.WithAsciiDomain(address) is not { } normal)
        {
            Error("501 5.1.7 Bad sender address syntax (domain)");
            return;
        }
        address = normal;
        if (_user is not null && !relay.MaySendAs(_user, address))
        {
            // Postfix's reject_authenticated_sender_login_mismatch: a login sends only as the addresses it owns.
            log.LogInformation("reject: MAIL from [{Client}]: 553 5.7.1 <{Sender}>: Sender address rejected: not owned by user {User}", client, address, _user);
            Error($"553 5.7.1 <{address}>: Sender address rejected: not owned by user {_user}");
            return;
        }
        if (_milters is null && services.Rates?.Counts(Policy.ClientEvent.Message, client) != true)
        {
            StartTransaction(address, given);
            return;
        }
        IReadOnlyList<string> texts = [.. parameters.Select(p => p.Value.Length > 0 ? $"{p.Key}={p.Value}" : p.Key)];
        _pendingStep = async ct =>
        {
            if (await RateRefusalAsync(Policy.ClientEvent.Message, ct)) return;
            if (_milters is null) StartTransaction(address, given);
            else await MilterMailAsync(address, given, texts, ct);
        };
    }

    private void StartTransaction(string address, MailParameters given)
    {
        _mail = new MailTransaction(address, given);
        Reply("250 2.1.0 Ok");
    }

    /// <summary>MAIL once the milters had it: the transaction starts, or their refusal is the answer.</summary>
    private async Task MilterMailAsync(string address, MailParameters given, IReadOnlyList<string> parameters, CancellationToken ct)
    {
        (_milterHold, _milterDiscard) = (null, false);
        _milters!.Facts.Sender = address;
        _milters.Facts.QueueId = null;
        if (MilterRefusal(await _milters.MailAsync(address, parameters, ct), "MAIL") is { } refused)
        {
            Error(refused);
            _milterAbortOwed = true; // Postfix undoes the MAIL event's state change with an abort
            return;
        }
        StartTransaction(address, given);
    }

    private static bool IsAscii(string s) => s.All(char.IsAscii);
}

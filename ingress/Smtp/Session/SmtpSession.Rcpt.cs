using Microsoft.Extensions.Logging;
using Mta.Mail.Routing;

namespace Mta.Ingress.Smtp;

// RCPT TO: the recipient restrictions (Postfix's smtpd_check.c) and recipient verification.
public sealed partial class SmtpSession
{
    /// <summary>A RCPT that passed the restrictions and waits for verification (<paramref name="Verify"/>) or the milters.</summary>
    private sealed record PendingRecipient(string Address, RcptParameters Dsn, bool Verify, IReadOnlyList<string> Parameters, bool Suppression);

    /// <summary>A RCPT waiting for its next hop's answer (<see cref="VerifyRecipientAsync"/>).</summary>
    private PendingRecipient? _probe;

    private Next Rcpt(string arg)
    {
        RcptTo(arg);
        return _probe is null ? Next.Command : Next.Verify;
    }

    private void RcptTo(string arg)
    {
        if (_mail is null) { Error("503 5.5.1 Error: need MAIL command"); return; }
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) { Error("501 5.5.4 Syntax: RCPT TO:<address>"); return; }
        if (!Paths.TryParse(arg[3..], out var address, out var parameters, out var problem) || address.Length == 0)
        {
            Error($"501 5.1.3 Bad recipient address syntax{problem}");
            return;
        }
        if (RcptParameters.Parse(parameters, _esmtp, out var refusal) is not { } given) { Error(refusal); return; }
        if (!_mail.Parameters.SmtpUtf8 && !IsAscii(address)) { Error("553 5.6.7 Must declare SMTPUTF8 to send unicode address"); return; }
        // One form of the domain for every decision below and for every next hop (Address.NormalizeDomain).
        if (Address.WithAsciiDomain(address) is not { } normal) { Error("501 5.1.3 Bad recipient address syntax (domain)"); return; }
        address = normal;
        // An error, as Postfix counts recipients past the limit (smtpd_recipient_overshoot_limit): a flood of them ends the session.
        if (_mail.Recipients.Count >= options.RecipientLimit) { Error("452 4.5.3 Error: too many recipients"); return; }
        if (!address.Contains('@') && address.Equals("postmaster", StringComparison.OrdinalIgnoreCase))
            address = "postmaster@" + localDomain; // Postfix: the bare name is a local address
        if (RecipientRefusal(address) is { } refused) { Error(refused); return; }
        // Postfix's order: permit_mynetworks and permit_sasl_authenticated come before reject_unverified_recipient.
        var verify = options.VerifyRecipients && verifier is not null && _user is null && !relay.IsTrusted(client) && verifier.CanProbe(address);
        // An authenticated sender hears at once that an address is suppressed; others' mail is dropped by cleanup.
        var suppression = _user is not null && services.Suppression is not null;
        if (verify || suppression || _milters is not null || services.Rates?.Counts(Policy.ClientEvent.Recipient, client) == true)
        {
            _probe = new PendingRecipient(address, given, verify, [.. parameters.Select(p => p.Value.Length > 0 ? $"{p.Key}={p.Value}" : p.Key)], suppression);
            return;
        }
        AcceptRecipient(address, given);
    }

    /// <summary>
    /// Postfix's default smtpd_recipient_restrictions, in order (smtpd_check.c): relay access for those neither trusted
    /// nor logged in, then the local and relay recipient tables. The refusal, logged, or null.
    /// </summary>
    private string? RecipientRefusal(string address)
    {
        string? table = null;
        var reply = ScreenRefusal ?? (_user is null && !relay.MayRelay(client, address) ? $"554 5.7.1 <{address}>: Relay access denied" : null);
        if (reply is null && relay.IsLocal(address) && !localRecipients.Exists(address)) table = "local";
        else if (reply is null && !relay.IsKnownRelayRecipient(address)) table = "relay";
        if (table is not null) reply = $"550 5.1.1 <{address}>: Recipient address rejected: User unknown in {table} recipient table";
        if (reply is not null)
            log.LogInformation("reject: RCPT from [{Client}]: {Reply}; from=<{Sender}> helo=<{Helo}>", client, reply, _mail!.Sender, _helo);
        return reply;
    }

    private void AcceptRecipient(string address, RcptParameters dsn)
    {
        _mail!.Add(address, dsn);
        Reply("250 2.1.5 Ok");
    }

    /// <summary>
    /// Answers the pending RCPT: from its next hop's answer (remembered, or asked now within the wait) when it is to be
    /// verified, then from the milters (a milter's refusal refuses this recipient only).
    /// </summary>
    private async Task VerifyRecipientAsync(CancellationToken ct)
    {
        var (address, dsn, verify, parameters, suppression) = _probe!;
        _probe = null;
        if (await RateRefusalAsync(Policy.ClientEvent.Recipient, ct)) return;
        if (suppression && await services.Suppression!.FindAsync(null, address, ct) is { } entry)
        {
            var reply = $"550 5.7.1 <{address}>: Recipient address rejected: on the suppression list ({entry.Category} since {entry.Added:yyyy-MM-dd})";
            log.LogInformation("reject: RCPT from [{Client}]: {Reply}; from=<{Sender}>", client, reply, _mail!.Sender);
            Error(reply);
            return;
        }
        var result = verify ? await verifier!.VerifyAsync(address, ct) : null;
        if (result is not null && result.Verdict != Verification.Verdict.Deliverable)
        {
            var reply = UnverifiedReply(address, result, options.UnverifiedRecipientRejectCode);
            log.LogInformation("reject: RCPT from [{Client}]: {Reply}; from=<{Sender}>", client, reply, _mail!.Sender);
            Error(reply);
            return;
        }
        if (_milters is not null && !_milterDiscard)
        {
            _milters.Facts.Recipient = address;
            var refused = MilterRefusal(await _milters.RcptAsync(address, parameters, ct), "RCPT");
            _milters.Facts.Recipient = null;
            if (refused is not null) { Error(refused); return; }
        }
        AcceptRecipient(address, dsn);
    }

    /// <summary>
    /// Postfix's replies for <c>reject_unverified_recipient</c>: an address the next hop refused gets the configured code
    /// (<c>unverified_recipient_reject_code</c>), one without an answer yet a 450 (<c>unverified_recipient_defer_code</c>).
    /// </summary>
    internal static string UnverifiedReply(string address, Verification.VerifyResult result, int rejectCode)
    {
        var (code, what) = result.Verdict == Verification.Verdict.Undeliverable ? (rejectCode, "undeliverable address") : (450, "unverified address");
        var detail = result.Detail.Length > 200 ? result.Detail[..200] : result.Detail;
        return $"{code} {code / 100}.1.1 <{address}>: Recipient address rejected: {what}: {detail}";
    }
}

using Microsoft.Extensions.Logging;
using Mta.Ingress.Auth;
using Mta.Ingress.Policy;

namespace Mta.Ingress.Smtp;

// AUTH (RFC 4954): the SASL exchange, the login check off the I/O path, and what of it may be logged.
public sealed partial class SmtpSession
{
    private Next Auth(string arg)
    {
        Authenticate(arg);
        return _login is null ? Next.Command : Next.Login;
    }

    private void Authenticate(string arg)
    {
        if (_user is not null) { Error("503 5.5.1 Error: already authenticated"); return; }
        if (!AuthOffered) { Error("503 5.5.1 Error: authentication not enabled"); return; }
        if (!_tls) { Error("538 5.7.11 Encryption required for requested authentication mechanism"); return; }
        if (_helo is null || !_esmtp) { Error("503 5.5.1 Error: send EHLO first"); return; }
        if (_mail is not null) { Error("503 5.5.1 Error: MAIL transaction in progress"); return; }
        var parts = arg.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
        Answer(_sasl.Start(parts.Length > 0 ? parts[0] : "", parts.Length > 1 ? parts[1] : null));
    }

    /// <summary>Sends the exchange's challenge or refusal, or keeps the credentials for <see cref="LoginAsync"/>.</summary>
    private void Answer(SaslStep step)
    {
        if (step.Challenge is { } challenge) Reply("334 " + challenge);
        else if (step.Refusal is { } refusal) Error(refusal);
        else _login = step.Credentials;
    }

    /// <summary>Whether this listener takes logins: the submission ports when a users file is set, the MX port only when asked.</summary>
    private bool AuthOffered => users.Configured && (listener != Listener.Mx || options.MxAuth);

    /// <summary>Checks the pending login (PBKDF2 on the thread pool, the failure limits first) and answers.</summary>
    private async Task LoginAsync(CancellationToken ct)
    {
        var (name, password, mechanism) = _login!;
        _login = null;
        if (await RateRefusalAsync(Policy.ClientEvent.Auth, ct)) return;
        var outcome = services.Rates?.Refusing(ClientEvent.AuthFailure, client) == true
            ? AuthOutcome.ClientThrottled // past the cluster's limit of failures: not even hashed
            : await users.LoginAsync(client, name, password, ct);
        if (outcome == AuthOutcome.Failed && services.Rates is { } rates) await rates.TakeAsync(ClientEvent.AuthFailure, client, ct);
        switch (outcome)
        {
            case AuthOutcome.Success:
                _user = name;
                if (_milters is not null) (_milters.Facts.Login, _milters.Facts.AuthMechanism) = (name, mechanism);
                log.LogInformation("[{Client}]: sasl_method={Mechanism}, sasl_username={User}", client, mechanism, name);
                Reply("235 2.7.0 Authentication successful");
                break;
            case AuthOutcome.Failed:
                // The name is logged (Postfix does), made printable since it is the client's; the password never is.
                log.LogWarning("[{Client}]: SASL {Mechanism} authentication failed for {User}", client, mechanism, Sanitize(name));
                Error("535 5.7.8 Error: authentication failed");
                break;
            case AuthOutcome.UserThrottled:
                log.LogWarning("[{Client}]: SASL {Mechanism} for {User} not tried: too many failures for this name lately", client, mechanism, Sanitize(name));
                Error("454 4.7.0 Temporary authentication failure");
                break;
            default:
                log.LogWarning("[{Client}]: SASL {Mechanism} not tried: too many failures from this client lately; disconnected", client, mechanism);
                Reply("421 4.7.0 " + hostname + " Error: too many failed authentications, try again later");
                _quit = true;
                break;
        }
    }

    /// <summary>
    /// What of the client's next input may be logged: nothing of an AUTH exchange (a response after <c>AUTH</c>, or an
    /// <c>AUTH</c> command's initial response), which carries credentials.
    /// </summary>
    private string Loggable(string verb, string input)
    {
        if (verb == "AUTH" || State == Expecting.SaslResponse) return "(authentication data, not logged)";
        var words = input.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        return words.Length > 0 && words[0].Equals("AUTH", StringComparison.OrdinalIgnoreCase)
            ? "AUTH " + (words.Length > 1 ? words[1] : "") + (words.Length > 2 ? " (initial response not logged)" : "")
            : input;
    }
}

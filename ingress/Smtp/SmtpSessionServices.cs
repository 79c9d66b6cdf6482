using Microsoft.Extensions.Logging;
using Mta.Ingress.Acceptance;
using Mta.Ingress.Auth;
using Mta.Ingress.Policy;
using Mta.Ingress.Tls;
using Mta.Mail.Routing;

namespace Mta.Ingress.Smtp;

/// <summary>
/// What every session of the ingress shares: its settings, its names, and the services it asks (policy, storage, TLS,
/// logins, checks). One object built once, in Kestrel's manner of one connection context, rather than a dozen
/// constructor parameters per connection.
/// </summary>
/// <param name="Options">The ingress settings.</param>
/// <param name="Hostname">The name in the greeting and the Received header (<c>myhostname</c>).</param>
/// <param name="LocalDomain">The first local domain (a bare <c>postmaster</c> is at it).</param>
/// <param name="Relay">Who may relay where; sender logins; relay recipients.</param>
/// <param name="LocalRecipients">The local recipient table.</param>
/// <param name="Acceptor">Stores an accepted message and queues it.</param>
/// <param name="Certificates">The TLS certificate (STARTTLS).</param>
/// <param name="Users">Logins, with their failure limits.</param>
/// <param name="Clock">The time.</param>
/// <param name="Log">smtpd's log.</param>
/// <param name="Metrics">The ingress's metrics, if any.</param>
/// <param name="Verifier">Recipient verification against the next hop, if any.</param>
/// <param name="Milters">The milters every session talks to; null for none.</param>
/// <param name="Rates">anvil's per-client rates for the whole cluster; null for none.</param>
/// <param name="Suppression">The suppression list, when on: a logged-in sender is refused a suppressed recipient at RCPT.</param>
public sealed record SmtpSessionServices(
    IngressOptions Options,
    string Hostname,
    string LocalDomain,
    RelayPolicy Relay,
    LocalRecipients LocalRecipients,
    IMessageAcceptor Acceptor,
    TlsCertificates Certificates,
    SaslUsers Users,
    TimeProvider Clock,
    ILogger Log,
    Metrics.IngressMetrics? Metrics = null,
    Verification.AddressVerifier? Verifier = null,
    Milter.MilterSettings? Milters = null,
    ClientRates? Rates = null,
    Mta.Mail.Suppression.SuppressionList? Suppression = null);

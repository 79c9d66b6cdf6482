namespace Mta.Mail.Configuration;

/// <summary>
/// The MTA's own settings, bound from the <c>Mta</c> configuration section
/// (environment: <c>Mta__LocalDomains__0=example.org</c>). Every option and its default
/// is documented in docs/configuration.md.
/// </summary>
public sealed class MtaOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Mta";

    /// <summary>This system's host name, used in greetings and Received headers (Postfix <c>myhostname</c>).</summary>
    public string MyHostname { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Domains delivered into the local Maildir store (Postfix <c>mydestination</c>); empty means <c>localhost</c>.</summary>
    public List<string> LocalDomains { get; set; } = [];

    /// <summary>
    /// How mail for the local domains is delivered (Postfix <c>local_transport</c>): <c>local:</c> writes Maildirs
    /// under <see cref="DataDirectory"/>; <c>lmtp:[host]:port</c> hands it to a mailbox server such as Dovecot,
    /// which is how a cluster delivers locally without root or shared volumes.
    /// </summary>
    public string LocalTransport { get; set; } = "local:";

    /// <summary>
    /// File of the users in the local domains, one local part per line (Postfix <c>local_recipient_maps</c>).
    /// When set, unknown local users are refused at RCPT with <c>550 5.1.1</c>; when not, all are accepted.
    /// </summary>
    public string? LocalRecipientsFile { get; set; }

    /// <summary>Path of a transport(5)-style map: <c>domain transport:nexthop</c> per line. Optional.</summary>
    public string? TransportMapFile { get; set; }

    /// <summary>
    /// Smarthost for all mail that is neither local nor in the transport map (Postfix <c>relayhost</c>):
    /// <c>[host]:port</c> connects to the host itself, <c>domain</c> or <c>domain:port</c> looks up its MX hosts. Empty: direct delivery.
    /// </summary>
    public string? RelayHost { get; set; }

    /// <summary>
    /// Networks delivery never connects to when a recipient domain's MX hosts (or an MTA-STS policy host) resolve into
    /// them; empty: <see cref="Delivery.DeliveryTargets.DefaultInternalNetworks"/> (loopback, private, link-local,
    /// carrier-NAT, multicast). A next hop named in the transport map, <see cref="RelayHost"/> or the local transport
    /// may be anywhere. Add the cluster's pod and service ranges where they are not private.
    /// </summary>
    public List<string> InternalNetworks { get; set; } = [];

    /// <summary>
    /// File of <c>address logins</c> lines (Postfix <c>smtpd_sender_login_maps</c>): the sender addresses each login may
    /// use (<c>@domain</c> for a whole domain). With it, an authenticated client using another address gets
    /// <c>553 5.7.1</c> at MAIL FROM, and its mail is DKIM-signed only for domains its login owns.
    /// </summary>
    public string? SenderLoginMapsFile { get; set; }

    /// <summary>Connect to internal addresses whatever names them (for test systems on loopback only).</summary>
    public bool DeliverToInternalNetworks { get; set; }

    /// <summary>Folder for local data; local mail lands under <c>{DataDirectory}/maildir/{user}/new</c>.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>DNS servers for MX lookups as <c>address[:port]</c>; empty means the system resolvers.</summary>
    public List<string> DnsServers { get; set; } = [];

    /// <summary>Port for SMTP delivery to MX hosts. 25 everywhere except tests.</summary>
    public int SmtpPort { get; set; } = 25;

    /// <summary>Seconds to wait for an SMTP peer to connect or answer (Postfix <c>smtp_connect_timeout</c> is 30s).</summary>
    public int SmtpTimeoutSeconds { get; set; } = 30;

    /// <summary>Maximum recipients per delivery job (Postfix <c>default_destination_recipient_limit</c>).</summary>
    public int DestinationRecipientLimit { get; set; } = 50;

    /// <summary>
    /// How long the jobs of one batch on the <c>delivery</c> queue are delivered one after another before the rest go
    /// back to the queue for any worker, so no batch nears the function timeout however slow its destination is.
    /// </summary>
    public int DeliveryBatchTimeBudgetSeconds { get; set; } = 60;

    /// <summary>First retry delay for deferred mail, in seconds (Postfix <c>minimal_backoff_time</c>).</summary>
    public int MinimalBackoffSeconds { get; set; } = 300;

    /// <summary>Longest retry delay, in seconds (Postfix <c>maximal_backoff_time</c>).</summary>
    public int MaximalBackoffSeconds { get; set; } = 4000;

    /// <summary>How long deferred mail is retried before it bounces, in seconds (Postfix <c>maximal_queue_lifetime</c>, 5 days).</summary>
    public int MaximalQueueLifetimeSeconds { get; set; } = 5 * 24 * 3600;

    /// <summary>Each retry delay is stretched by a random share up to this (0.2: up to 20 % later), so retries spread out.</summary>
    public double BackoffJitter { get; set; } = 0.2;

    /// <summary>
    /// Send the postmaster a copy of a bounce that could not be delivered (Postfix <c>notify_classes</c> with <c>2bounce</c>);
    /// off by default, as in Postfix: such a failure is logged and dropped.
    /// </summary>
    public bool NotifyDoubleBounce { get; set; }

    /// <summary>Who gets those copies (Postfix <c>2bounce_notice_recipient</c>); a bare name is in the first local domain.</summary>
    public string DoubleBounceRecipient { get; set; } = "postmaster";

    /// <summary>Send the sender a "still trying" notice once mail has been deferred this long, in seconds (Postfix <c>delay_warning_time</c>); 0: never.</summary>
    public int DelayWarningSeconds { get; set; }

    /// <summary>TLS for outbound SMTP where no policy says otherwise (Postfix <c>smtp_tls_security_level</c>): none, may, encrypt or verify.</summary>
    public string TlsSecurityLevel { get; set; } = "may";

    /// <summary>File of <c>destination level</c> lines overriding the TLS level per destination (Postfix <c>smtp_tls_policy_maps</c>).</summary>
    public string? TlsPolicyFile { get; set; }

    /// <summary>PEM file of the only CAs trusted for verified TLS and MTA-STS (Postfix <c>smtp_tls_CAfile</c>); empty: the system's roots.</summary>
    public string? TlsCaFile { get; set; }

    /// <summary>Look up and enforce recipient domains' MTA-STS policies (RFC 8461).</summary>
    public bool MtaSts { get; set; } = true;

    /// <summary>HTTPS port for MTA-STS policy fetches; 443 as RFC 8461 says, other values only for tests.</summary>
    public int MtaStsPort { get; set; } = 443;

    /// <summary>How long an idle outbound connection waits for the next job to its destination, in seconds (Postfix <c>smtp_connection_cache_time_limit</c>); 0: no reuse.</summary>
    public int SmtpConnectionCacheTimeLimitSeconds { get; set; } = 2;

    /// <summary>A connection is not reused once it is this old, in seconds (Postfix <c>smtp_connection_reuse_time_limit</c>).</summary>
    public int SmtpConnectionReuseTimeLimitSeconds { get; set; } = 300;

    /// <summary>Most idle connections a worker keeps per destination.</summary>
    public int SmtpConnectionCacheDestinationLimit { get; set; } = 20;

    /// <summary>
    /// Shape outbound SMTP per destination across every delivery replica: connection slots, message rates and throttling
    /// feedback shared through the storage account (docs/configuration.md, "Traffic shaping"). Off: each job's connection is
    /// its own, as with one replica.
    /// </summary>
    public bool TrafficShaping { get; set; } = true;

    /// <summary>The shaping file: per-destination limits (concurrency, rate, messages per connection, recipients); empty: the defaults for all.</summary>
    public string? ShapingFile { get; set; }

    /// <summary>How long a connection slot's lease lasts, in seconds (15–60); a replica that dies frees its slots within this.</summary>
    public int ShapingSlotLeaseSeconds { get; set; } = 30;

    /// <summary>
    /// A job waits inside a worker for a connection slot while one of this replica's came free within this many seconds,
    /// or for its turn in a rate due within it; otherwise it goes back on its queue.
    /// </summary>
    public double ShapingLocalWaitSeconds { get; set; } = 2;

    /// <summary>The longest a job waiting for its destination is put back for, in seconds (the delay doubles from 1 s up to this).</summary>
    public int ShapingMaximalPostponeSeconds { get; set; } = 30;

    /// <summary>A 4xx reply matching this (case-insensitive) counts as throttling, like every 421: the destination's concurrency and rate are halved for a while.</summary>
    public string ShapingThrottlePattern { get; set; } = @"rate limit|too many|throttl|try (again )?later|slow down|temporarily deferred|unusual rate|exceeded";

    /// <summary>Canonical map for sender and recipients (Postfix <c>canonical_maps</c>): <c>address  new-address</c> per line.</summary>
    public string? CanonicalMapsFile { get; set; }

    /// <summary>Canonical map for the envelope sender only (Postfix <c>sender_canonical_maps</c>), applied before <see cref="CanonicalMapsFile"/>.</summary>
    public string? SenderCanonicalMapsFile { get; set; }

    /// <summary>Canonical map for envelope recipients only (Postfix <c>recipient_canonical_maps</c>), applied before <see cref="CanonicalMapsFile"/>.</summary>
    public string? RecipientCanonicalMapsFile { get; set; }

    /// <summary>Virtual aliases (Postfix <c>virtual_alias_maps</c>): <c>address  address, address…</c>, <c>@domain</c> catch-alls, expanded recursively.</summary>
    public string? VirtualAliasMapsFile { get; set; }

    /// <summary>Separator between a user name and an address extension, e.g. <c>+</c> (Postfix <c>recipient_delimiter</c>); empty: none.</summary>
    public string RecipientDelimiter { get; set; } = "";

    /// <summary>Most addresses one recipient may expand to (Postfix <c>virtual_alias_expansion_limit</c>).</summary>
    public int VirtualAliasExpansionLimit { get; set; } = 1000;

    /// <summary>Deepest nesting of virtual aliases (Postfix <c>virtual_alias_recursion_limit</c>).</summary>
    public int VirtualAliasRecursionLimit { get; set; } = 1000;

    /// <summary>Regexp table of header checks (Postfix <c>header_checks</c>): <c>/pattern/ REJECT|DISCARD|HOLD|WARN|IGNORE text</c>.</summary>
    public string? HeaderChecksFile { get; set; }

    /// <summary>Regexp table of body checks (Postfix <c>body_checks</c>), applied to each body line.</summary>
    public string? BodyChecksFile { get; set; }

    /// <summary>
    /// Regexp table of bounce classification rules, <c>/pattern/ category</c> per line, tried before the built-in rules:
    /// for providers whose replies' codes say something else than their text (docs/configuration.md lists the categories).
    /// </summary>
    public string? BounceClassificationFile { get; set; }

    /// <summary>
    /// Put every recipient's outcome (delivery, deferral, bounce, expiry) on the <c>events</c> queue, for the webhook stage.
    /// Off by default: events cost a queue put per group of outcomes.
    /// </summary>
    public bool Events { get; set; }

    /// <summary>
    /// Keep a suppression list (table <c>mtasuppression</c>): hard bounces of the categories in
    /// <see cref="SuppressionLifetimes"/> add their address, and cleanup drops suppressed recipients of the tenant's mail.
    /// </summary>
    public bool Suppression { get; set; }

    /// <summary>
    /// <c>category=days</c> pairs, 0 for never: the bounce categories that suppress an address, and how long; <c>manual</c>
    /// for entries added with <c>mtactl suppression add</c>.
    /// </summary>
    public string SuppressionLifetimes { get; set; } = "invalid_recipient=0,bad_domain=30,manual=0,complaint=0";

    /// <summary>
    /// Header fields whose values become tags of a message's events and delivery log lines (<c>X-Campaign</c> gives
    /// the tag <c>x-campaign</c>), besides the injection API's own tags and, for mail from a logged-in SMTP client, <c>login</c>.
    /// </summary>
    public List<string> TagHeaders { get; set; } = [];

    /// <summary>
    /// Domains whose mail comes back here as reports (<c>domain</c> or <c>domain=tenant</c>): mail from a sender in one
    /// leaves with a VERP return path per recipient, and mail to one is read as a DSN or ARF report (AsyncBounce and
    /// Complaint events, the suppression list), never delivered. Empty: none.
    /// </summary>
    public List<string> BounceDomains { get; set; } = [];

    /// <summary>The two VERP delimiters (Postfix <c>default_verp_delimiters</c>): <c>owner+user=example.net@domain</c>.</summary>
    public string VerpDelimiters { get; set; } = Feedback.VerpAddress.DefaultDelimiters;

    /// <summary>Webhooks for events: <c>tenant url secret-file</c> per line, <c>*</c> for the rest; read again when it changes.</summary>
    public string? WebhooksFile { get; set; }

    /// <summary>Only this many bytes of a body are given to the body checks (Postfix <c>body_checks_size_limit</c>).</summary>
    public int BodyChecksSizeLimit { get; set; } = 51200;

    /// <summary>Longest single header field in bytes; the excess is discarded (Postfix <c>header_size_limit</c>).</summary>
    public int HeaderSizeLimit { get; set; } = 102400;

    /// <summary>A message with this many Received headers (ours included) is bounced as a loop, <c>5.4.6</c> (Postfix <c>hopcount_limit</c>).</summary>
    public int HopCountLimit { get; set; } = 50;

    /// <summary>
    /// DKIM signing table: <c>domain selector keyfile</c> per line (a <c>.example.org</c> entry covers subdomains). Mail from
    /// trusted or authenticated clients whose From domain is listed is signed. Empty: no signing.
    /// </summary>
    public string? DkimSigningTable { get; set; }

    /// <summary>
    /// Logins for next hops that want one (Postfix <c>smtp_sasl_password_maps</c>): <c>[host]:port user:password</c>,
    /// <c>[host] user:password</c> or <c>domain user:password</c> lines, in a file mounted from a Secret and read again
    /// when it changes. Empty (the default): no login anywhere.
    /// </summary>
    public string? SmtpSaslPasswordMapsFile { get; set; }

    /// <summary>
    /// Relay hosts by sender (Postfix <c>sender_dependent_relayhost_maps</c>): <c>user@domain relay</c> or
    /// <c>@domain relay</c> lines, the relay written as <see cref="RelayHost"/> is. A transport map entry for the
    /// recipient's domain still wins; this wins over <see cref="RelayHost"/>. Read again when it changes.
    /// </summary>
    public string? SenderDependentRelayHostMapsFile { get; set; }

    /// <summary>
    /// Look logins up by sender first, <c>user@domain</c> then <c>@domain</c>, before the next hop (Postfix
    /// <c>smtp_sender_dependent_authentication</c>, default off).
    /// </summary>
    public bool SmtpSenderDependentAuthentication { get; set; }

    /// <summary>
    /// The mechanisms a login may use, of PLAIN, LOGIN and XOAUTH2 (Postfix <c>smtp_sasl_mechanism_filter</c>). Empty
    /// (the default): PLAIN or LOGIN, whichever the server offers; XOAUTH2 only when listed (the password is then a token).
    /// </summary>
    public List<string> SmtpSaslMechanismFilter { get; set; } = [];

    /// <summary>
    /// Next hops (as the password map keys them, e.g. <c>[relay.internal]:25</c>) that may be sent a login without TLS.
    /// Empty (the default): a login is only ever sent inside TLS, and a next hop without it is deferred (the spirit of
    /// Postfix's <c>smtp_sasl_tls_security_options</c> and <c>smtp_tls_security_level = encrypt</c> for SASL).
    /// </summary>
    public List<string> SmtpSaslPlaintextNextHops { get; set; } = [];

    /// <summary>
    /// A login refused with 535 defers the mail instead of bouncing it (Postfix <c>smtp_sasl_auth_soft_bounce</c>, default
    /// on): a password being rotated should not bounce a queue. Off: the recipients bounce with the server's reply.
    /// </summary>
    public bool SmtpSaslAuthSoftBounce { get; set; } = true;

    /// <summary>
    /// Fills in list defaults after binding. Lists start empty because the configuration binder
    /// appends to a list rather than replacing it: a configured list must replace the default.
    /// </summary>
    public void ApplyDefaults()
    {
        if (LocalDomains.Count == 0) LocalDomains.Add("localhost");
    }

    /// <summary>Where local mail lands.</summary>
    public string MaildirRoot => Path.Combine(DataDirectory, "maildir");
}

namespace Mta.Ingress;

/// <summary>
/// Ingress settings, bound from the <c>Ingress</c> section (environment: <c>Ingress__Port=2525</c>).
/// Defaults follow Postfix's smtpd; every option is listed in docs/configuration.md.
/// </summary>
public sealed class IngressOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Ingress";

    /// <summary>
    /// How much of a message's start the session keeps for the checks and cleanup (the header and the body checks'
    /// share): the most <see cref="HeaderBlockSizeLimit"/> can be.
    /// </summary>
    public const int HeadSize = 256 * 1024;

    /// <summary>Address the SMTP listener binds to.</summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>TCP port of the MX listener (container port; published as 25).</summary>
    public int Port { get; set; } = 2525;

    /// <summary>
    /// Port of the submission listener (published as 587): STARTTLS, then AUTH, before any mail.
    /// 0 (the default, as in Postfix's master.cf) turns it off. Needs a certificate and a users file.
    /// </summary>
    public int SubmissionPort { get; set; }

    /// <summary>Port of the submissions listener (implicit TLS, published as 465; RFC 8314). 0 turns it off.</summary>
    public int SubmissionsPort { get; set; }

    /// <summary>
    /// The header a load balancer sends before SMTP to give the real client (Postfix <c>smtpd_upstream_proxy_protocol</c>):
    /// empty (the default) for none, <c>haproxy</c> for the PROXY protocol, versions 1 and 2 both. A listener that expects it
    /// refuses connections without it, and connections from outside <see cref="UpstreamProxyNetworks"/>.
    /// </summary>
    public string UpstreamProxyProtocol { get; set; } = "";

    /// <summary>Seconds to wait for the PROXY header (Postfix <c>smtpd_upstream_proxy_timeout</c>).</summary>
    public int UpstreamProxyTimeoutSeconds { get; set; } = 5;

    /// <summary>
    /// The load balancers' addresses (CIDR): only connections from these may name a client with a PROXY header. Required
    /// when <see cref="UpstreamProxyProtocol"/> is set; Postfix leaves this to the firewall.
    /// </summary>
    public List<string> UpstreamProxyNetworks { get; set; } = [];

    /// <summary>
    /// Which listeners expect the PROXY header: <c>mx</c>, <c>submission</c>, <c>submissions</c>. Empty (the default): all
    /// of them, when <see cref="UpstreamProxyProtocol"/> is set.
    /// </summary>
    public List<string> UpstreamProxyListeners { get; set; } = [];

    /// <summary>
    /// Postfix's postscreen in front of the MX listener (master.cf <c>smtp inet … postscreen</c>): the greeting pause and
    /// the DNS lists for clients outside <see cref="TrustedNetworks"/>, with a shared cache of those that passed. Off by
    /// default, as in Postfix.
    /// </summary>
    public bool Postscreen { get; set; }

    /// <summary>The pause before the greeting's last line, in seconds (Postfix <c>postscreen_greet_wait</c>).</summary>
    public int PostscreenGreetWaitSeconds { get; set; } = 6;

    /// <summary>What talking before the greeting gets: <c>ignore</c>, <c>enforce</c> or <c>drop</c> (Postfix <c>postscreen_greet_action</c>).</summary>
    public string PostscreenGreetAction { get; set; } = "ignore";

    /// <summary>How long passing the greeting test is remembered, in seconds (Postfix <c>postscreen_greet_ttl</c>: 1 day).</summary>
    public int PostscreenGreetTtlSeconds { get; set; } = 86400;

    /// <summary>DNS lists with filters and weights, <c>zen.example=127.0.0.[2..11]*3, allow.example*-2</c> (Postfix <c>postscreen_dnsbl_sites</c>).</summary>
    public string PostscreenDnsblSites { get; set; } = "";

    /// <summary>The combined score that fails the DNSBL test (Postfix <c>postscreen_dnsbl_threshold</c>).</summary>
    public int PostscreenDnsblThreshold { get; set; } = 1;

    /// <summary>
    /// A combined score at or below this lets the client skip the pause; 0 (the default) turns it off, a negative value
    /// turns it on (Postfix <c>postscreen_dnsbl_allowlist_threshold</c>).
    /// </summary>
    public int PostscreenDnsblAllowlistThreshold { get; set; }

    /// <summary>What a listed client gets: <c>ignore</c>, <c>enforce</c> or <c>drop</c> (Postfix <c>postscreen_dnsbl_action</c>).</summary>
    public string PostscreenDnsblAction { get; set; } = "ignore";

    /// <summary>The wait for a list's answer, in seconds (Postfix <c>postscreen_dnsbl_timeout</c>).</summary>
    public int PostscreenDnsblTimeoutSeconds { get; set; } = 10;

    /// <summary>The shortest a DNSBL answer is remembered, in seconds (Postfix <c>postscreen_dnsbl_min_ttl</c>).</summary>
    public int PostscreenDnsblMinTtlSeconds { get; set; } = 60;

    /// <summary>The longest a DNSBL answer is remembered, in seconds (Postfix <c>postscreen_dnsbl_max_ttl</c>).</summary>
    public int PostscreenDnsblMaxTtlSeconds { get; set; } = 3600;

    /// <summary>
    /// Port of the HTTP injection API (<c>POST /api/inject/v1</c>: one request, a message per recipient, queued as SMTP
    /// mail is). 0 (the default) turns it off. HTTPS when a certificate is configured.
    /// </summary>
    public int InjectionPort { get; set; }

    /// <summary>
    /// Serve the injection API over plain HTTP when no certificate is configured: only behind a TLS terminator on the same
    /// host or pod. Off by default: bearer tokens only inside TLS, as logins are.
    /// </summary>
    public bool InjectionPlainHttp { get; set; }

    /// <summary>The injection API's bearer tokens: <c>tenant sha256:HEX domain[,domain…]</c> lines; read again when it changes.</summary>
    public string? InjectionTokensFile { get; set; }

    /// <summary>Most recipients (so messages) one injection request may have.</summary>
    public int InjectionMaxRecipients { get; set; } = 10_000;

    /// <summary>Largest injection request body, in octets.</summary>
    public long InjectionRequestSizeLimit { get; set; } = 10_240_000;

    /// <summary>
    /// How long an injection request's <c>Idempotency-Key</c> is remembered, in seconds: within it, the same key and body
    /// are answered as the first time and queue nothing again.
    /// </summary>
    public int InjectionKeyLifetimeSeconds { get; set; } = 86_400;

    /// <summary>Injection requests a tenant may make per <see cref="InjectionRateWindowSeconds"/>, in the whole cluster; 0 (the default): no limit.</summary>
    public int InjectionRequestRatePerTenant { get; set; }

    /// <summary>Messages a tenant may inject per <see cref="InjectionRateWindowSeconds"/>, in the whole cluster; 0 (the default): no limit.</summary>
    public int InjectionMessageRatePerTenant { get; set; }

    /// <summary>The time unit of the per-tenant injection limits, in seconds.</summary>
    public int InjectionRateWindowSeconds { get; set; } = 60;

    /// <summary>How many messages of one injection request are being queued at once.</summary>
    public int InjectionConcurrency { get; set; } = 32;

    /// <summary>PEM certificate (chain) file for TLS; read again when it changes (Postfix <c>smtpd_tls_cert_file</c>).</summary>
    public string? TlsCertificateFile { get; set; }

    /// <summary>PEM private key file for TLS (Postfix <c>smtpd_tls_key_file</c>).</summary>
    public string? TlsKeyFile { get; set; }

    /// <summary>Submission users, <c>name:$pbkdf2-sha256$...</c> lines; read again when it changes.</summary>
    public string? UsersFile { get; set; }

    /// <summary>
    /// Port of the HTTP health endpoint (<c>GET /healthz</c>) for Kubernetes probes; 0 turns it off.
    /// Kept off the SMTP port so probes do not show up as SMTP sessions.
    /// </summary>
    public int HealthPort { get; set; }

    /// <summary>
    /// Seconds a stopping ingress waits for sessions in DATA to finish before it cuts them off; idle
    /// sessions get <c>421</c> at once. The pod's terminationGracePeriodSeconds must be longer.
    /// </summary>
    public int DrainSeconds { get; set; } = 30;

    /// <summary>Largest message accepted, in octets (Postfix <c>message_size_limit</c>).</summary>
    public long MessageSizeLimit { get; set; } = 10_240_000;

    /// <summary>
    /// What a bare CR or LF in DATA gets (Postfix <c>smtpd_forbid_bare_newline</c>): <c>reject</c> (the default:
    /// <c>550 5.5.2</c> for the message) or <c>normalize</c> (taken as CRLF). Either way only CRLF.CRLF ends DATA.
    /// </summary>
    public string BareLineEndings { get; set; } = "reject";

    /// <summary>
    /// Largest header block, in octets (the empty line that ends it included): a larger one gets <c>552 5.3.4</c> before
    /// anything parses it. At most the 256 KiB the session keeps of a message's start, where cleanup reads the header.
    /// Postfix's <c>header_size_limit</c> (102400) bounds one field; this bounds them all.
    /// </summary>
    public int HeaderBlockSizeLimit { get; set; } = 256 * 1024;

    /// <summary>
    /// Whether AUTH is offered on the MX port (inside TLS). Off by default, as Postfix's <c>smtpd_sasl_auth_enable</c> is
    /// off for port 25: logins belong on the submission ports, and an MX that offers them invites guessing.
    /// </summary>
    public bool MxAuth { get; set; }

    /// <summary>Failed logins one client (IPv6: its /64) may have within the window before its sessions are closed at AUTH.</summary>
    public int AuthFailureLimit { get; set; } = 10;

    /// <summary>Failed logins one user name may have within the window, from anywhere, before it gets only temporary failures.</summary>
    public int AuthUserFailureLimit { get; set; } = 20;

    /// <summary>The sliding window for the failure limits, in seconds.</summary>
    public int AuthFailureWindowSeconds { get; set; } = 600;

    /// <summary>Most header fields in a message; more get <c>552 5.3.4</c>.</summary>
    public int HeaderFieldLimit { get; set; } = 1000;

    /// <summary>Longest text line in DATA, CRLF included (RFC 5321 §4.5.3.1.6: 1000); longer gets <c>500 5.5.2</c>. 0: no limit.</summary>
    public int TextLineLimit { get; set; } = 1000;

    /// <summary>NOOP, VRFY, RSET and HELP a session may send before each one counts as an error (Postfix <c>smtpd_junk_command_limit</c>).</summary>
    public int JunkCommandLimit { get; set; } = 100;

    /// <summary>
    /// Refuse HELO/EHLO names that are neither a host name nor an address literal (Postfix <c>reject_invalid_helo_hostname</c>),
    /// with <c>501 5.5.2</c>. Trusted networks exempt.
    /// </summary>
    public bool RejectInvalidHelo { get; set; } = true;

    /// <summary>
    /// Disconnect clients that talk before the greeting or pipeline where RFC 2920 forbids it (Postfix
    /// <c>smtpd_forbid_unauth_pipelining</c>): <c>554 5.5.0</c>. Authenticated sessions exempt.
    /// </summary>
    public bool ForbidUnauthPipelining { get; set; } = true;

    /// <summary>Most recipients per message (Postfix <c>smtpd_recipient_limit</c>); more get <c>452</c>.</summary>
    public int RecipientLimit { get; set; } = 1000;

    /// <summary>Sessions this replica serves at once (Postfix <c>default_process_limit</c> for smtpd); more get <c>421</c>.</summary>
    public int MaxConnections { get; set; } = 100;

    /// <summary>Sessions at once from one client address (Postfix <c>smtpd_client_connection_count_limit</c>).</summary>
    public int MaxConnectionsPerClient { get; set; } = 50;

    /// <summary>
    /// Bits of an IPv4 client address that name one client for the per-client limits (Postfix
    /// <c>smtpd_client_ipv4_prefix_length</c>): 32, each address counted apart.
    /// </summary>
    public int ClientIPv4PrefixLength { get; set; } = 32;

    /// <summary>
    /// Bits of an IPv6 client address that name one client for the per-client limits (Postfix
    /// <c>smtpd_client_ipv6_prefix_length</c>, 84 there): 64, what one subscriber usually holds.
    /// </summary>
    public int ClientIPv6PrefixLength { get; set; } = 64;

    /// <summary>
    /// New connections per client per time unit, counted for the whole cluster (Postfix
    /// <c>smtpd_client_connection_rate_limit</c>); 0 is no limit.
    /// </summary>
    public int ConnectionRatePerClient { get; set; }

    /// <summary>MAIL commands per client per time unit, for the whole cluster (Postfix <c>smtpd_client_message_rate_limit</c>); 0 is no limit.</summary>
    public int MessageRatePerClient { get; set; }

    /// <summary>RCPT commands per client per time unit, for the whole cluster (Postfix <c>smtpd_client_recipient_rate_limit</c>); 0 is no limit.</summary>
    public int RecipientRatePerClient { get; set; }

    /// <summary>AUTH commands per client per time unit, for the whole cluster (Postfix <c>smtpd_client_auth_rate_limit</c>); 0 is no limit.</summary>
    public int AuthRatePerClient { get; set; }

    /// <summary>The time unit of the per-client rates, in seconds (Postfix <c>anvil_rate_time_unit</c>).</summary>
    public int ClientRateWindowSeconds { get; set; } = 60;

    /// <summary>Errors after which the session is closed (Postfix <c>smtpd_hard_error_limit</c>).</summary>
    public int HardErrorLimit { get; set; } = 20;

    /// <summary>Seconds to wait for a command or a block of data (Postfix <c>smtpd_timeout</c>).</summary>
    public int TimeoutSeconds { get; set; } = 300;

    /// <summary>
    /// Slowest acceptable DATA/BDAT transfer, octets per second (Postfix <c>smtpd_min_data_rate</c>): a message may
    /// take <see cref="TimeoutSeconds"/> plus its size at this rate, then gets <c>421 4.4.2</c>. 0 turns it off.
    /// </summary>
    public int MinDataRate { get; set; } = 500;

    /// <summary>
    /// Clients allowed to relay to any destination (Postfix <c>mynetworks</c>, CIDR notation).
    /// Everyone else may only send to local and relay domains. Empty means loopback only
    /// (Postfix <c>mynetworks_style = host</c>).
    /// </summary>
    public List<string> TrustedNetworks { get; set; } = [];

    /// <summary>
    /// Ask a recipient's next hop whether it exists before answering RCPT (Postfix <c>reject_unverified_recipient</c>):
    /// for clients neither trusted nor logged in, every recipient routed over LMTP or to an SMTP next hop (relay domains)
    /// is probed with MAIL, RCPT and RSET, and the answer is remembered. Mail for an address the next hop refuses is then
    /// refused at RCPT instead of bounced later (backscatter). Off by default, as in Postfix.
    /// </summary>
    public bool VerifyRecipients { get; set; }

    /// <summary>
    /// The reply code for a recipient its next hop refused (Postfix <c>unverified_recipient_reject_code</c>): 450 (Postfix's
    /// default, safe while the setup is new) or 550 once the next hop's answers are trusted.
    /// </summary>
    public int UnverifiedRecipientRejectCode { get; set; } = 450;

    /// <summary>
    /// Seconds a RCPT waits for a probe (Postfix <c>address_verify_poll_count</c> × <c>address_verify_poll_delay</c>); a
    /// probe that takes longer is answered <c>450 4.1.1 … Address verification in progress</c> and goes on for the retry.
    /// </summary>
    public int VerifyWaitSeconds { get; set; } = 6;

    /// <summary>The probe's MAIL FROM (Postfix <c>address_verify_sender</c>, <c>double-bounce</c>); without a domain, <c>@</c> the host name is added; empty is the null sender.</summary>
    public string VerifySender { get; set; } = "double-bounce";

    /// <summary>Seconds a deliverable answer is remembered (Postfix <c>address_verify_positive_refresh_time</c>, 7 days).</summary>
    public int VerifyPositiveSeconds { get; set; } = 7 * 24 * 3600;

    /// <summary>Seconds an undeliverable answer is remembered (Postfix <c>address_verify_negative_refresh_time</c>, 3 hours).</summary>
    public int VerifyNegativeSeconds { get; set; } = 3 * 3600;

    /// <summary>
    /// Run cleanup in the ingress before the <c>250</c>, as Postfix's smtpd hands each message to cleanup while the
    /// client waits: the delivery jobs are queued directly, one queue hop (a put, a receive and a delete, and for a
    /// spooled message the header's download) less per message, and a content check's REJECT or a mail loop is refused
    /// in the reply instead of bounced. A message whose cleanup here fails part-way goes through the <c>incoming</c>
    /// queue to the cleanup stage. The ingress then needs the cleanup settings and files (checks, rewriting, transport
    /// and DKIM tables). <c>false</c>: every message goes through the <c>incoming</c> queue, and its content checks run
    /// only there (cleanup is the one place that checks content), so a REJECT bounces after the 250 instead of being refused.
    /// </summary>
    public bool CleanupInline { get; set; } = true;

    /// <summary>
    /// Fills in list defaults after binding (the binder appends to lists; configured lists must replace defaults).
    /// The values are checked by <see cref="IngressOptionsValidator"/>, at start.
    /// </summary>
    public void ApplyDefaults()
    {
        if (TrustedNetworks.Count == 0) TrustedNetworks.AddRange(["127.0.0.0/8", "::1/128"]);
        if (UpstreamProxyListeners.Count == 0) UpstreamProxyListeners.AddRange(["mx", "submission", "submissions"]);
    }

    /// <summary>
    /// The milters every SMTP session talks to, in order (Postfix <c>smtpd_milters</c>): <c>inet:host:port</c> or
    /// <c>unix:/path</c>, separated by commas or spaces, each optionally in braces with its own settings:
    /// <c>{ inet:rspamd:11332, default_action = accept, command_timeout = 10s }</c>. Empty (the default): none.
    /// </summary>
    public string? Milters { get; set; }

    /// <summary>What a milter that is down, slow or broken gets: <c>tempfail</c> (default), <c>accept</c>, <c>reject</c>, <c>quarantine</c> (Postfix <c>milter_default_action</c>).</summary>
    public string MilterDefaultAction { get; set; } = "tempfail";

    /// <summary>Postfix <c>milter_connect_timeout</c>, in seconds.</summary>
    public int MilterConnectTimeoutSeconds { get; set; } = 30;

    /// <summary>Postfix <c>milter_command_timeout</c>: the wait for the reply to a connect, HELO, MAIL, RCPT, DATA or unknown-command event.</summary>
    public int MilterCommandTimeoutSeconds { get; set; } = 30;

    /// <summary>Postfix <c>milter_content_timeout</c>: the wait for the reply to a header, body chunk or end of message.</summary>
    public int MilterContentTimeoutSeconds { get; set; } = 300;

    /// <summary>Postfix <c>milter_protocol</c>: the version offered (6, or 2, 3, 4 for old filters).</summary>
    public int MilterProtocol { get; set; } = 6;

    /// <summary>Postfix <c>milter_macro_daemon_name</c>; empty: <c>Mta:MyHostname</c>.</summary>
    public string? MilterMacroDaemonName { get; set; }

    /// <summary>
    /// Macro names per event, replacing Postfix's defaults (<c>milter_connect_macros</c> and the rest): keys
    /// <c>Connect</c>, <c>Helo</c>, <c>Mail</c>, <c>Rcpt</c>, <c>Data</c>, <c>EndOfHeader</c>, <c>EndOfData</c>, <c>Unknown</c>.
    /// </summary>
    public Dictionary<string, string> MilterMacros { get; set; } = [];

    /// <summary>Domains this system relays for from anyone, besides its local domains (Postfix <c>relay_domains</c>).</summary>
    public List<string> RelayDomains { get; set; } = [];

    /// <summary>
    /// File of the addresses that exist in the relay domains (Postfix <c>relay_recipient_maps</c>): <c>user@domain</c> or
    /// <c>@domain</c> lines; others get <c>550 5.1.1</c> at RCPT. Re-read when it changes. None: every address is accepted.
    /// </summary>
    public string? RelayRecipientsFile { get; set; }
}

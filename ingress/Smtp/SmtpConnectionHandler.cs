using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Ingress.Acceptance;
using Mta.Ingress.Auth;
using Mta.Ingress.Tls;
using Mta.Ingress.Policy;
using Mta.Mail.Configuration;
using Mta.Mail.Routing;

namespace Mta.Ingress.Smtp;

/// <summary>Kestrel's entry point for each accepted TCP connection: runs one <see cref="SmtpSession"/>.</summary>
public sealed class SmtpConnectionHandler(
    IOptions<IngressOptions> options,
    IOptions<MtaOptions> mta,
    RelayPolicy relay,
    ClientLimits limits,
    ClientRates rates,
    LocalRecipients localRecipients,
    MessageAcceptor acceptor,
    TlsCertificates certificates,
    SaslUsers users,
    TimeProvider clock,
    IHostApplicationLifetime lifetime,
    Metrics.IngressMetrics metrics,
    Verification.AddressVerifier verifier,
    Screening.Postscreen postscreen,
    ILoggerFactory loggers,
    Mta.Mail.Suppression.SuppressionList suppression) : ConnectionHandler
{
    private readonly ILogger _log = loggers.CreateLogger("smtpd");

    private readonly SmtpSessionServices _services = new(options.Value, mta.Value.MyHostname, mta.Value.LocalDomains[0], relay, localRecipients,
        acceptor, certificates, users, clock, loggers.CreateLogger("smtpd"), metrics, verifier, Milter.MilterSettings.From(options.Value, mta.Value.MyHostname), rates,
        suppression.Enabled ? suppression : null);

    /// <inheritdoc />
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: every decision and log line takes them as IPv4.
        var client = (connection.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        // Every attempt counts against the rate, refused ones too, as anvil counts connects.
        var refusal = await rates.TakeAsync(ClientEvent.Connection, client, connection.ConnectionClosed);
        using var slot = refusal is null ? limits.TryEnter(client, out refusal) : null;
        if (slot is null)
        {
            _log.LogWarning("warning: {Refusal} [{Client}]", refusal, client);
            await connection.Transport.Output.WriteAsync(System.Text.Encoding.ASCII.GetBytes(refusal + "\r\n"));
            await connection.Transport.Output.CompleteAsync();
            return;
        }
        var listener = connection.Features.Get<ListenerFeature>()?.Role ?? Listener.Mx;
        var screened = await ScreenAsync(connection, client, listener);
        if (screened?.Action == Screening.ScreenAction.Drop) return;
        var session = new SmtpSession(connection.Transport.Input, connection.Transport.Output, client, listener, _services,
            connection.Features.Get<ITlsHandshakeFeature>() is { } tls ? TlsDescription.Of(tls.Protocol, tls.NegotiatedCipherSuite ?? default) : null,
            (connection.RemoteEndPoint as IPEndPoint, connection.LocalEndPoint as IPEndPoint))
        {
            ScreenRefusal = screened?.Action == Screening.ScreenAction.Enforce ? screened.Reply : null,
        };
        await session.RunAsync(connection.ConnectionClosed, lifetime.ApplicationStopping);
    }

    /// <summary>postscreen's tests, for MX clients outside the trusted networks (Postfix <c>postscreen_access_list = permit_mynetworks</c>); null when not screened.</summary>
    private async Task<Screening.ScreenVerdict?> ScreenAsync(ConnectionContext connection, IPAddress client, Listener listener)
    {
        if (!postscreen.Enabled || listener != Listener.Mx || relay.IsTrusted(client)) return null;
        var remote = connection.RemoteEndPoint as IPEndPoint ?? new IPEndPoint(client, 0);
        try
        {
            return await postscreen.ScreenAsync(connection.Transport.Input, connection.Transport.Output, new IPEndPoint(client, remote.Port),
                _services.Hostname, connection.ConnectionClosed);
        }
        catch (Exception e) when (e is IOException or ConnectionResetException or OperationCanceledException)
        {
            return Screening.Postscreen.HungUp;
        }
    }
}

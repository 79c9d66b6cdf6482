using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Mta.Ingress.Metrics;

namespace Mta.Ingress.UpstreamProxy;

/// <summary>
/// Kestrel connection middleware for a listener behind a load balancer: before TLS and the greeting, takes the PROXY
/// header from a listed balancer and makes its client the connection's remote end (and the address the client dialled
/// its local end), so relay control, limits, logs and Received see the real client. What Postfix's smtpd does with
/// <c>smtpd_upstream_proxy_protocol = haproxy</c>, plus a list of who may send the header at all. A connection that
/// is not from a balancer, or whose header is missing, late or malformed, gets Postfix's <c>421 4.3.0</c> and is closed:
/// without the client's address there is no telling what rights it has.
/// </summary>
public sealed class UpstreamProxyGate(UpstreamProxySettings settings, string myHostname, IngressMetrics metrics, ILogger log)
{
    /// <summary>The middleware for one listener; <paramref name="implicitTls"/>: its clients expect a TLS handshake, not text.</summary>
    public Func<ConnectionDelegate, ConnectionDelegate> Middleware(bool implicitTls) => next => async connection =>
    {
        if (await AdmitAsync(connection, implicitTls)) await next(connection);
    };

    private async Task<bool> AdmitAsync(ConnectionContext connection, bool implicitTls)
    {
        var peer = connection.RemoteEndPoint as IPEndPoint;
        if (peer is null || !settings.IsUpstream(peer.Address))
            return await RefuseAsync(connection, implicitTls, $"connection from [{peer?.Address}] is not from a load balancer in Ingress:UpstreamProxyNetworks");
        var header = await ReadAsync(connection.Transport.Input, connection.ConnectionClosed);
        if (header.Kind == ProxyHeaderKind.Invalid)
            return await RefuseAsync(connection, implicitTls, $"haproxy read: {header.Error} from [{peer.Address}]");
        if (header.Kind == ProxyHeaderKind.Proxied)
        {
            connection.RemoteEndPoint = Unmapped(header.Source!);
            connection.LocalEndPoint = Unmapped(header.Destination!);
        }
        return true;
    }

    private static IPEndPoint Unmapped(IPEndPoint end)
        => end.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(end.Address.MapToIPv4(), end.Port) : end;

    /// <summary>Reads the header, leaving everything after it (TLS handshake or SMTP) in the pipe.</summary>
    private async Task<ProxyHeader> ReadAsync(PipeReader input, CancellationToken closed)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(closed);
        deadline.CancelAfter(settings.Timeout);
        while (true)
        {
            ReadResult read;
            try { read = await input.ReadAsync(deadline.Token); }
            catch (OperationCanceledException) { return new ProxyHeader(ProxyHeaderKind.Invalid, Error: "timeout error"); }
            var buffer = read.Buffer;
            var header = ProxyHeader.Parse(buffer);
            if (header.Kind == ProxyHeaderKind.Incomplete)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                if (read.IsCompleted) return new ProxyHeader(ProxyHeaderKind.Invalid, Error: "short protocol header");
                continue;
            }
            input.AdvanceTo(header.Kind == ProxyHeaderKind.Invalid ? buffer.Start : buffer.GetPosition(header.Length));
            return header;
        }
    }

    private async Task<bool> RefuseAsync(ConnectionContext connection, bool implicitTls, string why)
    {
        var reply = $"421 4.3.0 {myHostname} Server local error";
        log.LogWarning("warning: {Why}", why);
        metrics.Rejected(reply, "PROXY");
        // A client that expects a TLS handshake would take a plain-text reply for a broken one: it is only closed.
        if (!implicitTls)
        {
            try { await connection.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes(reply + "\r\n")); }
            catch (Exception e) when (e is IOException or ConnectionResetException or ObjectDisposedException) { /* gone already */ }
        }
        return false;
    }
}

using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using System.Net.Security;
using Mta.Ingress.Tls;

namespace Mta.Ingress.Smtp;

// STARTTLS (RFC 3207): the handshake, after which the session starts over.
public sealed partial class SmtpSession
{
    private Next StartTls(string arg)
    {
        if (arg.Length > 0) return Refuse("501 5.5.4 Syntax: STARTTLS");
        if (_tls) return Refuse("554 5.5.1 Error: TLS already active");
        if (!certificates.Configured) return Refuse("502 5.5.1 Error: command not implemented");
        Reply("220 2.0.0 Ready to start TLS");
        return Next.StartTls;
    }

    /// <summary>The TLS handshake after <c>220 Ready to start TLS</c>; the session then starts over (RFC 3207 §4.2).</summary>
    private async Task<bool> StartTlsAsync(CancellationToken ct)
    {
        await FlushAsync(ct);
        var ssl = new SslStream(new DuplexPipeStream(_input, _output), leaveInnerStreamOpen: false);
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(options.TimeoutSeconds));
            try
            {
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = certificates.Current,
                    ClientCertificateRequired = false,
                }, timeout.Token);
            }
            catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException or OperationCanceledException)
            {
                log.LogInformation("SSL_accept error from [{Client}]: {Error}", client, e.Message);
                return false;
            }
        }
        _input = PipeReader.Create(ssl);
        _output = PipeWriter.Create(ssl);
        _tls = true;
        _tlsInfo = TlsDescription.Of(ssl.SslProtocol, ssl.NegotiatedCipherSuite);
        UpdateTlsFacts();
        _helo = null;
        _pipelining = false;
        _esmtp = false;
        ResetTransaction();
        log.LogInformation("TLS connection established from [{Client}]: {Protocol} with cipher {Cipher}", client, ssl.SslProtocol, ssl.NegotiatedCipherSuite);
        return true;
    }
}

using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Mta.Ingress.Tls;

/// <summary>
/// The server certificate, read from PEM files (a Kubernetes TLS Secret mounted as files) and read
/// again when they change, so a renewed certificate is used from the next handshake on without a restart.
/// A renewal that cannot be read (half-written files) keeps the previous certificate and is logged.
/// </summary>
public sealed class TlsCertificates
{
    private readonly string? _certFile;
    private readonly string? _keyFile;
    private readonly ILogger<TlsCertificates> _log;
    private readonly Lock _lock = new();
    private X509Certificate2? _current;
    private (DateTime Cert, DateTime Key) _stamp;

    /// <summary>Reads the files named by <see cref="IngressOptions.TlsCertificateFile"/> and <see cref="IngressOptions.TlsKeyFile"/>.</summary>
    public TlsCertificates(IOptions<IngressOptions> options, ILogger<TlsCertificates> log)
    {
        _certFile = options.Value.TlsCertificateFile;
        _keyFile = options.Value.TlsKeyFile;
        _log = log;
        if (Configured)
            _current = Load() ?? throw new InvalidOperationException($"Ingress: cannot read the TLS certificate {_certFile} / {_keyFile}");
    }

    /// <summary>True when a certificate is configured (STARTTLS is offered and the TLS listeners may run).</summary>
    public bool Configured => !string.IsNullOrEmpty(_certFile) && !string.IsNullOrEmpty(_keyFile);

    /// <summary>The certificate to present now.</summary>
    public X509Certificate2 Current
    {
        get
        {
            if (!Configured) throw new InvalidOperationException("no TLS certificate configured");
            lock (_lock)
            {
                if (Stamp() != _stamp && Load() is { } renewed)
                {
                    _current = renewed;
                    _log.LogInformation("TLS certificate reloaded: {Subject}, expires {NotAfter:u}", renewed.Subject, renewed.NotAfter);
                }
                return _current!;
            }
        }
    }

    private (DateTime, DateTime) Stamp() => (File.GetLastWriteTimeUtc(_certFile!), File.GetLastWriteTimeUtc(_keyFile!));

    private X509Certificate2? Load()
    {
        var stamp = Stamp();
        try
        {
            var cert = X509Certificate2.CreateFromPemFile(_certFile!, _keyFile!);
            _stamp = stamp;
            return cert;
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            _log.LogWarning("TLS certificate {File} not (re)loaded: {Error}", _certFile, e.Message);
            return null;
        }
    }
}

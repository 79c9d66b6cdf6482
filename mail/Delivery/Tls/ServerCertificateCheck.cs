using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Mail.Delivery.Tls;

/// <summary>
/// Decides whether a server's certificate is good enough for <see cref="TlsLevel.Verify"/> and for
/// MTA-STS: it chains to a trusted root and names the host. The roots are the system's, or only those
/// in <see cref="MtaOptions.TlsCaFile"/> when it is set (Postfix <c>smtp_tls_CAfile</c> with
/// <c>tls_append_default_CA = no</c>, its default).
/// </summary>
public sealed class ServerCertificateCheck
{
    private readonly X509Certificate2Collection? _roots;

    /// <summary>Reads the CA file, when one is configured.</summary>
    public ServerCertificateCheck(IOptions<MtaOptions> options)
    {
        var file = options.Value.TlsCaFile;
        if (!string.IsNullOrEmpty(file))
        {
            _roots = [];
            _roots.ImportFromPemFile(file);
            if (_roots.Count == 0) throw new FormatException($"Mta:TlsCaFile: no certificate in {file}");
        }
    }

    /// <summary>
    /// True when <paramref name="certificate"/> is trusted and valid for <paramref name="hostName"/>.
    /// <paramref name="problem"/> says why not, in words for the log and the deferral reason.
    /// </summary>
    public bool IsTrusted(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, string hostName, out string problem)
    {
        problem = "";
        if (certificate is null) { problem = "no server certificate"; return false; }
        using var cert = new X509Certificate2(certificate);
        if (_roots is null)
        {
            if ((errors & ~SslPolicyErrors.RemoteCertificateNameMismatch) != SslPolicyErrors.None)
            {
                problem = "untrusted issuer " + cert.Issuer;
                return false;
            }
        }
        else
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(_roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (presented is not null)
                foreach (var element in presented.ChainElements.Skip(1))
                    chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            if (!chain.Build(cert))
            {
                problem = "untrusted issuer " + cert.Issuer;
                return false;
            }
        }
        if (!cert.MatchesHostname(hostName, allowWildcards: true, allowCommonName: false))
        {
            problem = $"certificate does not name {hostName}";
            return false;
        }
        return true;
    }
}

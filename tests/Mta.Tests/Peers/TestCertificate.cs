using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mta.Tests.Peers;

/// <summary>Self-signed server certificates written as PEM files, as a Kubernetes TLS Secret mounts them.</summary>
public static class TestCertificate
{
    /// <summary>Writes a new certificate for <paramref name="name"/> to the two files; returns its thumbprint.</summary>
    public static string Write(string certFile, string keyFile, string name = "mta.test")
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(name);
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certFile, cert.ExportCertificatePem());
        return cert.Thumbprint;
    }
}

using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mta.Tests.Peers;

/// <summary>
/// Server certificates written as PEM files, as a Kubernetes TLS Secret mounts them: self-signed,
/// or issued by a test certificate authority that the MTA is told to trust (Mta:TlsCaFile).
/// </summary>
public static class TestCertificate
{
    // A 2048-bit RSA key takes a tenth of a second to a second of CPU to make, and a run made twenty: the certificates
    // here are told apart by their names and issuers, never by their keys, so they all hold one key pair.
    private static readonly Lazy<byte[]> SharedKey = new(() =>
    {
        using var key = RSA.Create(2048);
        return key.ExportPkcs8PrivateKey();
    });

    private static RSA NewKey()
    {
        var key = RSA.Create();
        key.ImportPkcs8PrivateKey(SharedKey.Value, out _);
        return key;
    }

    /// <summary>A test CA: its certificate (with key) and the PEM file holding the certificate.</summary>
    public sealed record Authority(X509Certificate2 Certificate, string PemFile);

    /// <summary>Creates a CA and writes its certificate to <paramref name="caFile"/>.</summary>
    public static Authority WriteAuthority(string caFile, string name = "MTA Test CA")
    {
        using var key = NewKey();
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));
        File.WriteAllText(caFile, cert.ExportCertificatePem());
        return new Authority(cert, caFile);
    }

    /// <summary>Writes a server certificate for <paramref name="names"/> issued by <paramref name="ca"/>.</summary>
    public static void WriteIssued(Authority ca, string certFile, string keyFile, params string[] names)
    {
        using var key = NewKey();
        var request = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var n in names) san.AddDnsName(n);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var serial = RandomNumberGenerator.GetBytes(12);
        using var cert = request.Create(ca.Certificate, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial);
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certFile, cert.ExportCertificatePem());
    }

    /// <summary>Writes a new certificate for <paramref name="name"/> to the two files; returns its thumbprint.</summary>
    public static string Write(string certFile, string keyFile, string name = "mta.test")
    {
        using var key = NewKey();
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

using System.Net.Security;
using System.Security.Authentication;

namespace Mta.Ingress.Tls;

/// <summary>How a TLS session is named in logs and the Received header, as Postfix does (<c>TLSv1.3 with cipher …</c>).</summary>
public static class TlsDescription
{
    /// <summary>The protocol in OpenSSL's spelling and the cipher suite.</summary>
    public static string Of(SslProtocols protocol, TlsCipherSuite cipher)
    {
        var name = protocol switch
        {
            SslProtocols.Tls13 => "TLSv1.3",
            SslProtocols.Tls12 => "TLSv1.2",
            _ => protocol.ToString(),
        };
        return $"{name} with cipher {cipher}";
    }
}

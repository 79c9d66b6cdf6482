using Mta.Ingress;
using Mta.Ingress.Smtp;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The ingress says what it listens on in SMTP terms: role and TLS per port, nothing that suggests HTTP.</summary>
public sealed class ListenerBannerTests
{
    [Fact]
    public void Each_listener_is_named_by_its_role_and_how_tls_is_had()
    {
        var lines = ListenerBanner.Lines(new IngressOptions { ListenAddress = "0.0.0.0", Port = 2525, SubmissionPort = 2587, SubmissionsPort = 2465, HealthPort = 8080 }, tls: true);
        Assert.Equal(
        [
            "smtpd: listening on 0.0.0.0:2525 (MX, port 25's role): STARTTLS offered, no AUTH",
            "smtpd: listening on 0.0.0.0:2587 (submission, port 587's role): STARTTLS, then AUTH before MAIL",
            "smtpd: listening on 0.0.0.0:2465 (submissions, port 465's role): implicit TLS, then AUTH before MAIL",
            "health: listening on 0.0.0.0:8080 (HTTP: /healthz, /metrics)",
        ], lines);
        Assert.Equal(["smtpd: listening on [::1]:25 (MX, port 25's role): no TLS (no certificate), no AUTH"],
            ListenerBanner.Lines(new IngressOptions { ListenAddress = "::1", Port = 25, SubmissionPort = 0, SubmissionsPort = 0, HealthPort = 0 }, tls: false));
    }
}

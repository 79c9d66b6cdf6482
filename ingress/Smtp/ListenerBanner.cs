namespace Mta.Ingress.Smtp;

/// <summary>
/// What the ingress announces at start, in SMTP terms: each listener's address, its role and how TLS is had there,
/// where Kestrel would say "Now listening on: http://…" for ports that do not speak HTTP.
/// </summary>
public static class ListenerBanner
{
    /// <summary>One line per listener, for <paramref name="ingress"/> as configured; <paramref name="tls"/>: a certificate is configured.</summary>
    public static IReadOnlyList<string> Lines(IngressOptions ingress, bool tls)
    {
        var at = ingress.ListenAddress.Contains(':') ? $"[{ingress.ListenAddress}]" : ingress.ListenAddress;
        var lines = new List<string>
        {
            $"smtpd: listening on {at}:{ingress.Port} (MX, port 25's role): {(tls ? "STARTTLS offered" : "no TLS (no certificate)")}, " +
            (ingress.MxAuth && tls ? "AUTH after STARTTLS" : "no AUTH"),
        };
        if (ingress.SubmissionPort > 0)
            lines.Add($"smtpd: listening on {at}:{ingress.SubmissionPort} (submission, port 587's role): STARTTLS, then AUTH before MAIL");
        if (ingress.SubmissionsPort > 0)
            lines.Add($"smtpd: listening on {at}:{ingress.SubmissionsPort} (submissions, port 465's role): implicit TLS, then AUTH before MAIL");
        if (ingress.InjectionPort > 0)
            lines.Add($"injection: listening on {at}:{ingress.InjectionPort} (HTTP injection API, POST /api/inject/v1): {(tls ? "HTTPS" : "plain HTTP (no certificate)")}, bearer tokens");
        if (ingress.HealthPort > 0)
            lines.Add($"health: listening on {at}:{ingress.HealthPort} (HTTP: /healthz, /metrics)");
        return lines;
    }
}

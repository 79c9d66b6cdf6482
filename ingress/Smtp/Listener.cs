namespace Mta.Ingress.Smtp;

/// <summary>Which of the three SMTP services a connection came in on.</summary>
public enum Listener
{
    /// <summary>Port 25: mail from the world to our domains; STARTTLS offered, AUTH only after it.</summary>
    Mx,

    /// <summary>Port 587 (RFC 6409): STARTTLS, then AUTH, before MAIL.</summary>
    Submission,

    /// <summary>Port 465 (RFC 8314): TLS from the first byte, then AUTH, before MAIL.</summary>
    Submissions,
}

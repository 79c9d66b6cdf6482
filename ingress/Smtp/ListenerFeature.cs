namespace Mta.Ingress.Smtp;

/// <summary>
/// Which listener a connection came in on, set by the listener itself: its port cannot tell once a PROXY header has
/// made the local end the address the client dialled at the load balancer.
/// </summary>
/// <param name="Role">The listener's service.</param>
public sealed record ListenerFeature(Listener Role)
{
    /// <summary>The name settings use for <paramref name="role"/>: <c>mx</c>, <c>submission</c>, <c>submissions</c>.</summary>
    public static string NameOf(Listener role) => role.ToString().ToLowerInvariant();
}

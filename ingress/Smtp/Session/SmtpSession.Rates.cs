using Microsoft.Extensions.Logging;
using Mta.Ingress.Policy;

namespace Mta.Ingress.Smtp;

// anvil's per-client message, recipient and AUTH rates (ClientRates), asked once a command's own checks have passed.
public sealed partial class SmtpSession
{
    /// <summary>Counts one <paramref name="kind"/> event; true, with Postfix's refusal sent and logged, when it is over the client's rate.</summary>
    private async Task<bool> RateRefusalAsync(ClientEvent kind, CancellationToken ct)
    {
        if (services.Rates is not { } rates || await rates.TakeAsync(kind, client, ct) is not { } refusal) return false;
        log.LogWarning("warning: {Refusal} for service smtp", refusal);
        Error(refusal);
        return true;
    }
}

using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;

namespace Mta.Mail.Delivery;

/// <summary>
/// Postfix's lmtp client: LMTP (RFC 2033) to a mailbox server, which answers DATA once per accepted
/// recipient. Speaks through <see cref="OutboundSmtpConnection"/>; every outcome is per recipient.
/// </summary>
public sealed class LmtpDelivery(MxResolver resolver, IOptions<MtaOptions> options, TimeProvider clock)
{
    private readonly MtaOptions _options = options.Value;

    /// <summary>Delivers the message bytes to each recipient of <paramref name="job"/> through the mailbox server at its next hop.</summary>
    public async Task<IReadOnlyList<RecipientResult>> DeliverAsync(DeliveryJob job, ReadOnlyMemory<byte> message, AttemptTimes times, CancellationToken ct)
    {
        var hop = job.NextHop;
        var port = hop.Port ?? 24;
        var relay = $"{hop.Host}[{hop.Host}]:{port}";
        OutboundSmtpConnection connection;
        try
        {
            // The mailbox server's name resolves through the MTA's own DNS servers, like every other next hop.
            var host = (await resolver.ResolveHostAsync(hop.Host, ct))[0];
            connection = await OutboundSmtpConnection.OpenAsync(host, port, lmtp: true, _options.MyHostname,
                TimeSpan.FromSeconds(_options.SmtpTimeoutSeconds), clock.GetUtcNow(), ct);
        }
        catch (Exception e) when (e is SmtpConnectException or DnsLookupException)
        {
            return job.Recipients.Select(r => new RecipientResult(r, RecipientStatus.Deferred, $"4.4.1 connect to {relay}: {e.Message}", relay)).ToList();
        }
        times.Connected();
        var results = await connection.SendAsync(job, message, smtpUtf8: job.SmtpUtf8 && connection.Offers("SMTPUTF8"), ct);
        await connection.QuitAsync();
        return results;
    }
}

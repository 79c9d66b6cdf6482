using System.Net;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Routing;

namespace Mta.Ingress.Policy;

/// <summary>
/// Postfix's default <c>smtpd_relay_restrictions</c>: permit_mynetworks, then only local and
/// relay domains (defer_unauth_destination is reject here). Never an open relay.
/// </summary>
public sealed class RelayPolicy
{
    private readonly IPNetwork[] _trusted;
    private readonly HashSet<string> _destinations;
    private readonly HashSet<string> _local;
    private readonly Mta.Mail.Feedback.BounceDomains _bounceDomains;
    private readonly RelayRecipients _recipients;
    private readonly Mta.Mail.Submission.SenderLogins? _senderLogins;

    /// <summary>Builds the policy from the ingress and MTA options; a malformed network fails at start.</summary>
    public RelayPolicy(IOptions<IngressOptions> ingress, IOptions<MtaOptions> mta, Mta.Mail.Submission.SenderLogins? senderLogins = null,
        Mta.Mail.Feedback.BounceDomains? bounceDomains = null)
    {
        _senderLogins = senderLogins;
        _trusted = ingress.Value.TrustedNetworks.Select(n => IPNetwork.TryParse(n, out var net)
            ? net : throw new FormatException($"Ingress:TrustedNetworks: '{n}' is not CIDR notation")).ToArray();
        _local = new HashSet<string>(mta.Value.LocalDomains.Select(Address.NormalizeDomain), StringComparer.OrdinalIgnoreCase);
        // Reports come back to the bounce domains from anywhere; cleanup reads them (Mta.Mail.Feedback).
        _bounceDomains = bounceDomains ?? Mta.Mail.Feedback.BounceDomains.None;
        _destinations = new HashSet<string>(mta.Value.LocalDomains.Concat(ingress.Value.RelayDomains).Select(Address.NormalizeDomain)
            .Concat(_bounceDomains.Domains), StringComparer.OrdinalIgnoreCase);
        _recipients = new RelayRecipients(ingress.Value.RelayRecipientsFile);
    }

    /// <summary>Whether an authenticated <paramref name="login"/> may use <paramref name="sender"/> (the sender login map).</summary>
    public bool MaySendAs(string login, string sender) => _senderLogins?.Owns(login, sender) ?? true;

    /// <summary>True when the sender login map is set.</summary>
    public bool KnowsSenderLogins => _senderLogins?.Configured == true;

    /// <summary>True when the relay domains have a recipient table (<c>relay_recipient_maps</c>).</summary>
    public bool KnowsRelayRecipients => _recipients.Configured;

    /// <summary>
    /// Whether <paramref name="recipient"/> may be accepted as far as the relay recipient table goes: true outside the
    /// relay domains, and inside them when listed (or when there is no table).
    /// </summary>
    public bool IsKnownRelayRecipient(string recipient)
        => IsLocal(recipient) || _bounceDomains.Contains(recipient) || !_destinations.Contains(Address.DomainOf(recipient)) || _recipients.Exists(recipient);

    /// <summary>Whether <paramref name="recipient"/> is in one of the local domains.</summary>
    public bool IsLocal(string recipient) => _local.Contains(Address.DomainOf(recipient));

    /// <summary>Whether the client may send to any destination.</summary>
    public bool IsTrusted(IPAddress client)
    {
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        return _trusted.Any(n => n.Contains(client));
    }

    /// <summary>Whether mail to <paramref name="recipient"/> is accepted from this client.</summary>
    public bool MayRelay(IPAddress client, string recipient)
    {
        // Characters used by the classic relay tricks (percent hack, bang path, source route) are
        // refused outright for untrusted clients: the domain after the last '@' is the only one we honour.
        var local = Address.LocalPartOf(recipient);
        var domain = Address.DomainOf(recipient);
        if (IsTrusted(client)) return true;
        if (domain.Length == 0 || local.IndexOfAny(['%', '!', '@']) >= 0) return false;
        return _destinations.Contains(domain);
    }
}

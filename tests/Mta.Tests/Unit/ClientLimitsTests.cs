using System.Net;
using Microsoft.Extensions.Options;
using Mta.Ingress;
using Mta.Ingress.Policy;
using Mta.Mail.Configuration;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>anvil's per-client counts in the ingress: an IPv6 client is its /64, so hopping addresses gains nothing.</summary>
public sealed class ClientLimitsTests
{
    private static ClientLimits Limits(int perClient, int rate)
    {
        var ingress = new IngressOptions { MaxConnectionsPerClient = perClient, ConnectionRatePerClient = rate };
        ingress.ApplyDefaults();
        var relay = new RelayPolicy(Options.Create(ingress), Options.Create(new MtaOptions()));
        return new ClientLimits(Options.Create(ingress), relay);
    }

    [Fact]
    public void Addresses_of_one_ipv6_64_share_the_connection_limit_and_another_64_does_not()
    {
        var limits = Limits(perClient: 2, rate: 0);
        using var a = limits.TryEnter(IPAddress.Parse("2001:db8:1:2::1"), out _);
        using var b = limits.TryEnter(IPAddress.Parse("2001:db8:1:2:ffff::2"), out _);
        Assert.NotNull(a);
        Assert.NotNull(b);
        Assert.Null(limits.TryEnter(IPAddress.Parse("2001:db8:1:2:1234:5678:9abc:def0"), out var refusal));
        Assert.StartsWith("421 4.7.0 Error: too many connections from 2001:db8:1:2:1234:5678:9abc:def0", refusal);
        using var other = limits.TryEnter(IPAddress.Parse("2001:db8:1:3::1"), out _);
        Assert.NotNull(other);
    }
}

using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mta.Ingress;
using Mta.Ingress.Policy;
using Mta.Mail.Configuration;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>anvil's per-client rates: the shared schedule's arithmetic, and a replica's use of it without storage.</summary>
public sealed class ClientRatesTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly long T0 = new DateTimeOffset(2026, 12, 3, 0, 0, 0, TimeSpan.Zero).UtcTicks;

    [Fact]
    public void A_quiet_client_may_spend_its_whole_limit_at_once_then_one_per_interval()
    {
        var tat = 0L;
        var granted = 0;
        for (var i = 0; i < 12; i++)
        {
            var (n, next) = RateBudget.Take(tat, T0, 10, Minute, 1);
            granted += n;
            tat = n > 0 ? next : tat;
        }
        Assert.Equal(10, granted);
        Assert.Equal(0, RateBudget.Take(tat, T0 + TimeSpan.FromSeconds(5).Ticks, 10, Minute, 1).Granted);
        Assert.Equal(1, RateBudget.Take(tat, T0 + TimeSpan.FromSeconds(6).Ticks, 10, Minute, 1).Granted); // one interval later
        Assert.Equal(T0 + TimeSpan.FromSeconds(6).Ticks, RateBudget.FreeAt(tat, 10, Minute));
        Assert.Equal(10, RateBudget.Take(tat, T0 + Minute.Ticks, 10, Minute, 20).Granted); // a window later: all of it, no more
    }

    [Fact]
    public void A_share_takes_what_is_left_and_no_more()
    {
        var (first, tat) = RateBudget.Take(0, T0, 10, Minute, 7);
        var (second, _) = RateBudget.Take(tat, T0, 10, Minute, 7);
        Assert.Equal((7, 3), (first, second));
    }

    private static ClientRates Rates(Action<IngressOptions> set, TimeProvider clock)
    {
        var o = new IngressOptions { TrustedNetworks = ["10.0.0.0/8"] };
        set(o);
        o.ApplyDefaults();
        var relay = new RelayPolicy(Options.Create(o), Options.Create(new MtaOptions()));
        return new ClientRates(o, relay, null, clock, NullLogger.Instance);
    }

    [Fact]
    public async Task Each_event_has_its_own_limit_and_refusal_and_a_64_is_one_client()
    {
        var clock = new ManualClock();
        var rates = Rates(o => (o.MessageRatePerClient, o.RecipientRatePerClient) = (2, 3), clock);
        var client = IPAddress.Parse("2001:db8:9:9::1");
        for (var i = 0; i < 2; i++) Assert.Null(await rates.TakeAsync(ClientEvent.Message, IPAddress.Parse($"2001:db8:9:9::{i + 5}"), default));
        Assert.Equal("450 4.7.1 Error: too much mail from 2001:db8:9:9::1", await rates.TakeAsync(ClientEvent.Message, client, default));
        for (var i = 0; i < 3; i++) Assert.Null(await rates.TakeAsync(ClientEvent.Recipient, client, default));
        Assert.Equal("450 4.7.1 Error: too many recipients from 2001:db8:9:9::1", await rates.TakeAsync(ClientEvent.Recipient, client, default));
        Assert.Null(await rates.TakeAsync(ClientEvent.Message, IPAddress.Parse("2001:db8:9:a::1"), default)); // another /64
        Assert.Null(await rates.TakeAsync(ClientEvent.Connection, client, default)); // no connection limit set
        clock.Advance(TimeSpan.FromSeconds(30)); // half a minute frees one of two messages
        Assert.Null(await rates.TakeAsync(ClientEvent.Message, client, default));
        Assert.NotNull(await rates.TakeAsync(ClientEvent.Message, client, default));
    }

    [Fact]
    public async Task Trusted_networks_are_not_counted()
    {
        var rates = Rates(o => o.AuthRatePerClient = 1, new ManualClock());
        for (var i = 0; i < 5; i++) Assert.Null(await rates.TakeAsync(ClientEvent.Auth, IPAddress.Parse("10.1.2.3"), default));
        Assert.Null(await rates.TakeAsync(ClientEvent.Auth, IPAddress.Parse("192.0.2.1"), default));
        Assert.Equal("450 4.7.1 Error: too many AUTH commands from 192.0.2.1", await rates.TakeAsync(ClientEvent.Auth, IPAddress.Parse("192.0.2.1"), default));
    }
}

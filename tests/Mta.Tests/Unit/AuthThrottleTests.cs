using System.Net;
using Mta.Ingress.Auth;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class AuthThrottleTests
{
    [Fact]
    public void A_client_is_blocked_at_its_limit_of_failures_within_the_window_and_free_again_after_it()
    {
        var clock = new ManualClock();
        var throttle = new AuthThrottle(clientLimit: 3, userLimit: 100, TimeSpan.FromMinutes(10), clock);
        var client = IPAddress.Parse("192.0.2.7");
        for (var i = 0; i < 3; i++)
        {
            Assert.False(throttle.ClientBlocked(client));
            throttle.Failed(client, "user" + i);
            clock.Advance(TimeSpan.FromMinutes(1));
        }
        Assert.True(throttle.ClientBlocked(client));
        Assert.False(throttle.ClientBlocked(IPAddress.Parse("192.0.2.8")));
        clock.Advance(TimeSpan.FromMinutes(8)); // the first failure leaves the window
        Assert.False(throttle.ClientBlocked(client));
    }

    [Fact]
    public void A_name_is_blocked_at_its_limit_whatever_the_clients()
    {
        var throttle = new AuthThrottle(clientLimit: 100, userLimit: 2, TimeSpan.FromMinutes(10), new ManualClock());
        throttle.Failed(IPAddress.Parse("192.0.2.1"), "alice");
        Assert.False(throttle.UserBlocked("alice"));
        throttle.Failed(IPAddress.Parse("198.51.100.1"), "alice");
        Assert.True(throttle.UserBlocked("alice"));
        Assert.False(throttle.UserBlocked("bob"));
    }

    [Theory]
    [InlineData("2001:db8:1:2:aaaa::1", "2001:db8:1:2:bbbb::9", true)]   // one /64: one client
    [InlineData("2001:db8:1:2::1", "2001:db8:1:3::1", false)]
    [InlineData("::ffff:192.0.2.7", "192.0.2.7", true)]                   // IPv4-mapped is IPv4
    public void Ipv6_clients_are_counted_by_their_64(string a, string b, bool same) =>
        Assert.Equal(same, Mta.Ingress.Policy.ClientGroup.Default.Of(IPAddress.Parse(a)) == Mta.Ingress.Policy.ClientGroup.Default.Of(IPAddress.Parse(b)));

    [Theory]
    [InlineData(24, 48, "192.0.2.7", "192.0.2.200", true)]
    [InlineData(24, 48, "192.0.2.7", "192.0.3.7", false)]
    [InlineData(24, 48, "2001:db8:1:2::1", "2001:db8:1:ffff::1", true)]
    [InlineData(24, 48, "2001:db8:1::1", "2001:db8:2::1", false)]
    [InlineData(32, 128, "2001:db8::1", "2001:db8::2", false)]
    [InlineData(32, 61, "2001:db8:0:7::1", "2001:db8:0:0::1", true)]  // a prefix that cuts inside an octet
    [InlineData(32, 61, "2001:db8:0:8::1", "2001:db8:0:0::1", false)]
    public void Prefix_lengths_set_what_one_client_is(int v4, int v6, string a, string b, bool same)
    {
        var groups = new Mta.Ingress.Policy.ClientGroup(v4, v6);
        Assert.Equal(same, groups.Of(IPAddress.Parse(a)) == groups.Of(IPAddress.Parse(b)));
    }

    [Fact]
    public void New_names_past_the_tracked_most_go_uncounted_at_one_search_a_minute_until_old_ones_leave_the_window()
    {
        var clock = new ManualClock();
        var throttle = new AuthThrottle(clientLimit: 0, userLimit: 1, TimeSpan.FromMinutes(10), clock);
        for (var i = 0; i < AuthThrottle.MaxTracked; i++) throttle.Failed(IPAddress.Loopback, $"name{i}");
        Assert.True(throttle.UserBlocked("name0"));

        for (var i = 0; i < 500; i++) throttle.Failed(IPAddress.Loopback, $"late{i}");
        Assert.False(throttle.UserBlocked("late0")); // not tracked: the table is full of failures still in the window
        Assert.True(throttle.UserBlocked("name0")); // the known ones' limits hold
        Assert.Equal(1, throttle.Sweeps); // one search for the 500, not one each

        clock.Now += TimeSpan.FromMinutes(11);
        throttle.Failed(IPAddress.Loopback, "later");
        Assert.Equal(2, throttle.Sweeps);
        Assert.True(throttle.UserBlocked("later")); // the old failures left the window, and the search made room
        Assert.False(throttle.UserBlocked("name0"));
    }

    [Fact]
    public void A_limit_of_zero_means_no_limit()
    {
        var throttle = new AuthThrottle(0, 0, TimeSpan.FromMinutes(10), new ManualClock());
        for (var i = 0; i < 100; i++) throttle.Failed(IPAddress.Loopback, "alice");
        Assert.False(throttle.ClientBlocked(IPAddress.Loopback));
        Assert.False(throttle.UserBlocked("alice"));
    }
}

using System.Text;
using Mta.Ingress.Acceptance;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class HeaderMeterTests
{
    private static HeaderMeter Measure(long cap, params string[] pieces)
    {
        var meter = new HeaderMeter(cap);
        foreach (var p in pieces) meter.Observe(Encoding.ASCII.GetBytes(p));
        return meter;
    }

    [Fact]
    public void Counts_fields_and_octets_up_to_the_empty_line_wherever_the_pieces_split()
    {
        var meter = Measure(1000, "Subject: a\r\n", "X-Long: b\r\n c\r", "\n\r", "\nbody: not a field\r\n");
        Assert.True(meter.Complete);
        Assert.Equal(2, meter.Fields); // the folded line is the same field
        Assert.Equal("Subject: a\r\nX-Long: b\r\n c\r\n\r\n".Length, meter.Octets);
    }

    [Fact]
    public void Stops_looking_past_its_cap()
    {
        var meter = Measure(100, string.Concat(Enumerable.Repeat("X:\r\n", 10_000)));
        Assert.False(meter.Complete);
        Assert.True(meter.Octets > meter.Cap && meter.Octets <= meter.Cap + 1);
        Assert.False(meter.Within(100, 1000));
    }

    [Fact]
    public void A_message_without_a_body_is_all_header()
    {
        var meter = Measure(1000, "Subject: a\r\nFrom: b\r\n");
        Assert.False(meter.Complete);
        Assert.Equal(2, meter.Fields);
        Assert.True(meter.Within(1000, 2));
        Assert.False(meter.Within(1000, 1));
    }
}

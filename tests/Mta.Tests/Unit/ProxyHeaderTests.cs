using System.Buffers;
using System.Net;
using System.Text;
using Mta.Ingress.UpstreamProxy;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The PROXY protocol header as HAProxy's proxy-protocol.txt defines it, versions 1 and 2.</summary>
public sealed class ProxyHeaderTests
{
    private static ProxyHeader Parse(byte[] octets) => ProxyHeader.Parse(new ReadOnlySequence<byte>(octets));

    private static ProxyHeader Parse(string text) => Parse(Encoding.ASCII.GetBytes(text));

    // A v2 header: signature, version/command, family/transport, length, then the address block.
    private static byte[] V2(byte command, byte family, byte[] block)
        => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, command, family,
            (byte)(block.Length >> 8), (byte)block.Length, .. block];

    private static byte[] Inet4Block(string source, string destination, int sourcePort, int destinationPort, byte[]? tlvs = null)
        => [.. IPAddress.Parse(source).GetAddressBytes(), .. IPAddress.Parse(destination).GetAddressBytes(),
            (byte)(sourcePort >> 8), (byte)sourcePort, (byte)(destinationPort >> 8), (byte)destinationPort, .. tlvs ?? []];

    [Theory]
    [InlineData("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", "192.0.2.7:40000", "198.51.100.1:25")]
    [InlineData("PROXY TCP6 2001:db8::7 2001:db8::1 40000 587\r\n", "[2001:db8::7]:40000", "[2001:db8::1]:587")]
    public void Version_1_gives_the_client_and_the_address_it_dialled(string header, string source, string destination)
    {
        var parsed = Parse(header + "EHLO client.test\r\n");
        Assert.Equal(ProxyHeaderKind.Proxied, parsed.Kind);
        Assert.Equal(header.Length, parsed.Length);
        Assert.Equal(source, parsed.Source!.ToString());
        Assert.Equal(destination, parsed.Destination!.ToString());
    }

    [Fact]
    public void Version_1_unknown_is_the_balancer_speaking_for_itself()
    {
        var parsed = Parse("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n");
        Assert.Equal(ProxyHeaderKind.Local, parsed.Kind);
        Assert.Equal(ProxyHeaderKind.Local, Parse("PROXY UNKNOWN\r\n").Kind);
    }

    [Theory]
    [InlineData("PROXY TCP4 1 2 3 4\r\n")] // IPAddress.TryParse takes "1" for 0.0.0.1
    [InlineData("PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n")]
    [InlineData("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25 extra\r\n")]
    [InlineData("PROXY TCP4 2001:db8::7 198.51.100.1 40000 25\r\n")] // wrong family
    [InlineData("PROXY TCP6 192.0.2.7 2001:db8::1 40000 25\r\n")]
    [InlineData("PROXY TCP6 fe80::1%eth0 2001:db8::1 40000 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.7 198.51.100.1 040000 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.7 198.51.100.1 -1 25\r\n")]
    [InlineData("PROXY TCP4  192.0.2.7 198.51.100.1 40000 25\r\n")]
    [InlineData("PROXY UDP4 192.0.2.7 198.51.100.1 40000 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\n")] // bare LF
    [InlineData("EHLO client.test\r\n")] // a client that speaks SMTP at once
    [InlineData("proxy TCP4 192.0.2.7 198.51.100.1 40000 25\r\n")]
    [InlineData("\r\n\r\nQUIT\r\n")] // the start of the v2 signature, then not
    public void Malformed_or_missing_headers_are_invalid(string text)
    {
        var parsed = Parse(text);
        Assert.Equal(ProxyHeaderKind.Invalid, parsed.Kind);
        Assert.False(string.IsNullOrEmpty(parsed.Error));
    }

    [Fact]
    public void A_version_1_line_over_107_octets_is_invalid_without_waiting_for_its_end()
    {
        Assert.Equal(ProxyHeaderKind.Incomplete, Parse("PROXY TCP6 " + new string('1', 95)).Kind); // 106 octets, no LF yet
        Assert.Equal(ProxyHeaderKind.Invalid, Parse("PROXY TCP6 " + new string('1', 96)).Kind);
    }

    [Fact]
    public void Every_prefix_of_a_valid_header_waits_for_more_and_anything_else_is_told_at_once()
    {
        foreach (var whole in new[] { Encoding.ASCII.GetBytes("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n"),
                     V2(0x21, 0x11, Inet4Block("192.0.2.7", "198.51.100.1", 40000, 25, [0x04, 0x00, 0x02, 0xAB, 0xCD])) })
        {
            for (var n = 1; n < whole.Length; n++)
                Assert.Equal(ProxyHeaderKind.Incomplete, Parse(whole[..n]).Kind);
            Assert.Equal(ProxyHeaderKind.Proxied, Parse(whole).Kind);
        }
        Assert.Equal(ProxyHeaderKind.Invalid, Parse("PROXX").Kind);
        Assert.Equal(ProxyHeaderKind.Invalid, Parse([0x0D, 0x0A, 0x0D, 0x0A, 0x01]).Kind);
    }

    [Fact]
    public void Version_2_over_ipv4_skips_its_tlvs_and_leaves_what_follows()
    {
        byte[] tlvs = [0x05, 0x00, 0x03, 0x61, 0x62, 0x63, 0x20, 0x00, 0x01, 0x00]; // UNIQUE_ID, then an SSL TLV
        var header = V2(0x21, 0x11, Inet4Block("192.0.2.7", "198.51.100.1", 40000, 25, tlvs));
        var parsed = Parse([.. header, .. "EHLO x\r\n"u8.ToArray()]);
        Assert.Equal(ProxyHeaderKind.Proxied, parsed.Kind);
        Assert.Equal(header.Length, parsed.Length);
        Assert.Equal("192.0.2.7:40000", parsed.Source!.ToString());
        Assert.Equal("198.51.100.1:25", parsed.Destination!.ToString());
    }

    [Fact]
    public void Version_2_over_ipv6_gives_both_ends()
    {
        byte[] block = [.. IPAddress.Parse("2001:db8::7").GetAddressBytes(), .. IPAddress.Parse("2001:db8::1").GetAddressBytes(), 0x9C, 0x40, 0x00, 0x19];
        var parsed = Parse(V2(0x21, 0x21, block));
        Assert.Equal("[2001:db8::7]:40000", parsed.Source!.ToString());
        Assert.Equal("[2001:db8::1]:25", parsed.Destination!.ToString());
    }

    [Fact]
    public void Version_2_local_and_unspecified_keep_the_connections_own_addresses()
    {
        Assert.Equal(ProxyHeaderKind.Local, Parse(V2(0x20, 0x00, [])).Kind);
        Assert.Equal(ProxyHeaderKind.Local, Parse(V2(0x20, 0x11, Inet4Block("192.0.2.7", "198.51.100.1", 1, 2))).Kind);
        Assert.Equal(ProxyHeaderKind.Local, Parse(V2(0x21, 0x00, [])).Kind);
    }

    [Theory]
    [InlineData((byte)0x11, (byte)0x11, "unrecognized protocol version")] // version 1 in a v2 header
    [InlineData((byte)0x22, (byte)0x11, "bad command in proxy header")]
    [InlineData((byte)0x21, (byte)0x12, "unsupported network protocol")] // UDP
    [InlineData((byte)0x21, (byte)0x31, "unsupported network protocol")] // AF_UNIX: no address to decide by
    [InlineData((byte)0x21, (byte)0x41, "unsupported network protocol")]
    public void Version_2_headers_that_cannot_name_a_tcp_client_are_invalid(byte command, byte family, string error)
    {
        var parsed = Parse(V2(command, family, Inet4Block("192.0.2.7", "198.51.100.1", 1, 2)));
        Assert.Equal(ProxyHeaderKind.Invalid, parsed.Kind);
        Assert.Equal(error, parsed.Error);
    }

    [Fact]
    public void A_version_2_address_block_shorter_than_its_family_needs_is_invalid()
    {
        Assert.Equal("short address field", Parse(V2(0x21, 0x11, new byte[11])).Error);
        Assert.Equal("short address field", Parse(V2(0x21, 0x21, new byte[35])).Error);
    }
}

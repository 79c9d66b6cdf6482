using System.Buffers;
using System.Net;
using System.Text;
using Mta.Ingress.Milter;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The milter protocol's packets as libmilter lays them out (mfdef.h): framing, commands, replies.</summary>
public sealed class MilterCodecTests
{
    private static byte[] Bytes(string s) => Encoding.ASCII.GetBytes(s);

    [Fact]
    public void Option_negotiation_offers_version_6_with_its_actions_and_steps()
    {
        var packet = MilterCommands.OptionNegotiation(MilterActions.AddHeaders | MilterActions.Quarantine, MilterSteps.Skip | MilterSteps.NoReplyHeader);
        Assert.Equal([0, 0, 0, 13, (byte)'O', 0, 0, 0, 6, 0, 0, 0, 0x21, 0, 0, 0x04, 0x80], packet);
    }

    [Fact]
    public void Connect_carries_name_family_port_and_address_and_a_mapped_address_is_ipv4()
    {
        var packet = MilterCommands.Connect("client.test", IPAddress.Parse("::ffff:192.0.2.7"), 2525);
        Assert.Equal([.. new byte[] { 0, 0, 0, 26, (byte)'C' }, .. Bytes("client.test\0"), (byte)'4', 0x09, 0xDD, .. Bytes("192.0.2.7\0")], packet);
        Assert.Equal((byte)'6', MilterCommands.Connect("[2001:db8::1]", IPAddress.Parse("2001:db8::1"), 25)[5 + 14]);
        Assert.Equal([0, 0, 0, 4, (byte)'C', .. Bytes("x\0"), (byte)'U'], MilterCommands.Connect("x", null, 0));
    }

    [Fact]
    public void Mail_rcpt_header_and_macros_are_nul_terminated_strings()
    {
        Assert.Equal([0, 0, 0, 20, (byte)'M', .. Bytes("<a@b.test>\0SIZE=10\0")], MilterCommands.Mail("a@b.test", ["SIZE=10"]));
        Assert.Equal([0, 0, 0, 4, (byte)'R', .. Bytes("<>\0")], MilterCommands.Rcpt("", []));
        Assert.Equal([0, 0, 0, 13, (byte)'L', .. Bytes("Subject\0 hi\0")], MilterCommands.Header("Subject", " hi"));
        Assert.Equal([0, 0, 0, 17, (byte)'D', (byte)'C', .. Bytes("j\0mta.test\0_\0x\0")],
            MilterCommands.Macros(MilterCommand.Connect, [new("j", "mta.test"), new("_", "x")]));
        Assert.Equal([0, 0, 0, 1, (byte)'E'], MilterCommands.Event(MilterCommand.EndOfMessage));
        Assert.Throws<ArgumentException>(() => MilterCommands.Event(MilterCommand.Header));
        Assert.Throws<ArgumentOutOfRangeException>(() => MilterCommands.Body(new byte[MilterProtocol.MaxData + 1]));
    }

    [Fact]
    public void Packets_are_read_whole_one_at_a_time_whatever_the_split()
    {
        byte[] two = [.. MilterPacket.Encode((byte)'c', []), .. MilterPacket.Encode((byte)'y', Bytes("550 5.7.1 no\0"))];
        for (var split = 0; split <= two.Length; split++)
        {
            var buffer = new ReadOnlySequence<byte>(two, 0, split);
            var read = new List<(byte, byte[])>();
            while (MilterPacket.TryRead(ref buffer, MilterProtocol.MaxData, out var code, out var data)) read.Add((code, data));
            var expected = split >= 5 ? split >= two.Length ? 2 : 1 : 0;
            Assert.Equal(expected, read.Count);
        }
        var all = new ReadOnlySequence<byte>(two);
        Assert.True(MilterPacket.TryRead(ref all, MilterProtocol.MaxData, out var first, out _));
        Assert.True(MilterPacket.TryRead(ref all, MilterProtocol.MaxData, out var second, out var text));
        Assert.Equal(((byte)'c', (byte)'y', "550 5.7.1 no\0"), (first, second, Encoding.ASCII.GetString(text)));
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 0, 0 }, "length 0")]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }, "over the")]   // refused from the length alone: nothing is allocated for it
    [InlineData(new byte[] { 0, 1, 0, 1 }, "over the")]
    public void A_length_of_nothing_or_too_much_is_a_protocol_error(byte[] input, string why)
    {
        var buffer = new ReadOnlySequence<byte>(input);
        Assert.Contains(why, Assert.Throws<MilterProtocolException>(() => MilterPacket.TryRead(ref buffer, MilterProtocol.MaxData, out _, out _)).Message);
    }

    [Fact]
    public void Replies_parse_into_what_they_ask_for()
    {
        Assert.Equal(new MilterReply.Simple(MilterReplyCode.Tempfail), MilterReply.Parse((byte)'t', []));
        var reply = Assert.IsType<MilterReply.Reply>(MilterReply.Parse((byte)'y', Bytes("451-4.7.1 one\r\n451 4.7.1 two\0")));
        Assert.True(reply.Temporary);
        Assert.Equal(new MilterReply.Quarantine("looks odd"), MilterReply.Parse((byte)'q', Bytes("looks odd\0")));
        Assert.Equal(new MilterReply.HeaderChange(MilterReplyCode.AddHeader, -1, "X-Spam", " yes"), MilterReply.Parse((byte)'h', Bytes("X-Spam\0 yes\0")));
        Assert.Equal(new MilterReply.HeaderChange(MilterReplyCode.ChangeHeader, 2, "Received", ""),
            MilterReply.Parse((byte)'m', [0, 0, 0, 2, .. Bytes("Received\0\0")]));
        Assert.Equal(new MilterReply.EnvelopeChange(MilterReplyCode.ChangeFrom, "<b@c.test>", "SIZE=5"), MilterReply.Parse((byte)'e', Bytes("<b@c.test>\0SIZE=5\0")));
        Assert.Equal(new MilterReply.EnvelopeChange(MilterReplyCode.DeleteRecipient, "<x@y.test>", null), MilterReply.Parse((byte)'-', Bytes("<x@y.test>\0")));
        var negotiated = Assert.IsType<MilterReply.Negotiated>(MilterReply.Parse((byte)'O', [0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0x10]));
        Assert.Equal((6u, MilterActions.AddHeaders, MilterSteps.NoBody), (negotiated.Version, negotiated.Actions, negotiated.Steps));
    }

    [Theory]
    [InlineData('y', "250 2.0.0 fine\0", "malformed reply code")]       // only 4xx and 5xx may replace the MTA's reply
    [InlineData('y', "550 no end", "terminating NUL")]
    [InlineData('y', "550 5.7.1 one\r\n250 2.0.0 smuggled\0", "malformed reply code")] // a line of another code
    [InlineData('y', "550 5.7.1 one\n250 2.0.0 smuggled\0", "malformed reply code")]    // a bare LF
    [InlineData('y', "550 5.7.1 one\r250 ok\0", "malformed reply code")]               // a bare CR
    [InlineData('y', "550 5.7.1 \u0007bell\0", "malformed reply code")]
    [InlineData('h', "Bad:Name\0v\0", "malformed header name")]
    [InlineData('h', "X-Only\0", "strings where")]
    [InlineData('+', "<a@b>\r\nRCPT TO:<c@d>\0", "malformed address")]
    [InlineData('Z', "", "unknown reply code")]
    public void A_malformed_reply_is_a_protocol_error(char code, string data, string why)
        => Assert.Contains(why, Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)code, Bytes(data))).Message);

    [Fact]
    public void A_multi_line_reply_is_sent_with_hyphens_on_every_line_but_the_last_and_its_length_is_bounded()
    {
        var reply = Assert.IsType<MilterReply.Reply>(MilterReply.Parse((byte)'y', Bytes("554 5.7.1 one\r\n554-5.7.1 two\r\n554\0")));
        Assert.Equal("554-5.7.1 one\r\n554-5.7.1 two\r\n554 ", reply.Text);
        var tooLong = "550 " + new string('x', MilterReply.MaxReplyLineLength) + "\0";
        Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)'y', Bytes(tooLong)));
        var tooMany = string.Join("\r\n", Enumerable.Repeat("550-x", MilterReply.MaxReplyLines + 1)) + "\0";
        Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)'y', Bytes(tooMany)));
    }

    [Fact]
    public void A_negotiation_for_a_version_we_do_not_speak_is_refused()
    {
        Assert.Contains("version 7", Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)'O', [0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0])).Message);
        Assert.Contains("12 expected", Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)'O', [0, 0, 0, 6])).Message);
    }
}

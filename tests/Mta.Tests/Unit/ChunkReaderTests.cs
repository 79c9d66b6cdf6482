using System.Buffers;
using System.Text;
using Mta.Ingress.Smtp;
using Mta.Mail.Delivery;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>BDAT chunks under DATA's line policy, and the CRLF-only rule for what delivery sends.</summary>
public sealed class ChunkReaderTests
{
    private static (ChunkReader Reader, string Stored) Read(bool normalize, int lineLimit, params string[] chunks)
    {
        var sink = new MemoryStream();
        var reader = new ChunkReader(sink, 10_000, normalize, lineLimit);
        foreach (var chunk in chunks) reader.Write(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(chunk)));
        reader.Complete();
        return (reader, Encoding.ASCII.GetString(sink.ToArray()));
    }

    [Theory]
    [InlineData("a\r\nb\r\n", false)]
    [InlineData("a\nb\r\n", true)]
    [InlineData("a\rb\r\n", true)]
    [InlineData("a\r\r\nb\r\n", true)]
    [InlineData("a\r\nb\r", true)] // a CR as the last octet of the message
    public void Bare_cr_and_lf_are_noticed(string text, bool bare)
    {
        var (reader, stored) = Read(false, 0, text);
        Assert.Equal(bare, reader.BareLineEnding);
        Assert.Equal(text, stored); // kept as they came when not normalizing (the message is then refused)
    }

    [Fact]
    public void A_crlf_split_across_chunks_is_not_bare()
    {
        var (reader, stored) = Read(false, 0, "Subject: x\r", "\n\r", "\nbody\r\n");
        Assert.False(reader.BareLineEnding);
        Assert.Equal("Subject: x\r\n\r\nbody\r\n", stored);
    }

    [Fact]
    public void Normalizing_makes_every_bare_line_end_crlf_across_chunks()
    {
        var (reader, stored) = Read(true, 0, "line1\n.\nMAIL FROM:<x@y>\r\nline2\r", ".\r", "\nend\r");
        Assert.True(reader.BareLineEnding);
        Assert.Equal("line1\r\n.\r\nMAIL FROM:<x@y>\r\nline2\r\n.\r\nend\r\n", stored);
        Assert.Equal(stored.Length, reader.Size);
    }

    [Theory]
    [InlineData(1000, false)]
    [InlineData(1001, true)]
    public void Lines_are_measured_across_chunks_with_their_crlf(int lineWithCrlf, bool tooLong)
    {
        var text = new string('x', lineWithCrlf - 2);
        var (reader, _) = Read(false, 1000, "a\r\n" + text[..300], text[300..] + "\r", "\nb\r\n");
        Assert.Equal(tooLong, reader.LineTooLong);
    }

    [Fact]
    public void Octets_over_the_size_limit_are_counted_not_stored()
    {
        var sink = new MemoryStream();
        var reader = new ChunkReader(sink, 10);
        reader.Write(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("0123456789abcdef")));
        Assert.True(reader.TooBig);
        Assert.True(sink.Length <= 10);
    }

    [Theory]
    [InlineData("a\r\nb\r\n", true)]
    [InlineData("", true)]
    [InlineData("a\r.\r\nb\r\n", false)]
    [InlineData("a\n.\nb", false)]
    [InlineData("a\r", false)]
    [InlineData("\r\n\r\n", true)]
    public void Delivery_tells_crlf_only_messages_apart(string text, bool clean) =>
        Assert.Equal(clean, LineEndings.OnlyCrlf(Encoding.ASCII.GetBytes(text)));

    [Fact]
    public void Delivery_sends_crlf_for_every_bare_line_end()
    {
        var fixedUp = Encoding.ASCII.GetString(LineEndings.ToCrlf(Encoding.ASCII.GetBytes("a\r.\r\nb\n.\nc\r\n\r")));
        Assert.Equal("a\r\n.\r\nb\r\n.\r\nc\r\n\r\n", fixedUp);
        Assert.True(LineEndings.OnlyCrlf(Encoding.ASCII.GetBytes(fixedUp)));
    }
}

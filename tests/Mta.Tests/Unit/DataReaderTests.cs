using System.Buffers;
using System.Text;
using Mta.Ingress.Smtp;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class DataReaderTests
{
    /// <summary>Feeds <paramref name="wire"/> in chunks of <paramref name="chunk"/> bytes, as a socket might.</summary>
    private static (bool Done, string Content, string Remaining, long Size) Feed(string wire, int chunk = int.MaxValue, long limit = 1_000_000)
        => Feed(sink => new DataReader(sink, limit), wire, chunk).Result;

    /// <summary>Feeds a reader made by <paramref name="make"/> over a fresh sink; gives the outcome and the reader.</summary>
    private static ((bool Done, string Content, string Remaining, long Size) Result, DataReader Reader) Feed(Func<Stream, DataReader> make, string wire, int chunk = int.MaxValue)
    {
        var sink = new MemoryStream();
        var reader = make(sink);
        var bytes = Encoding.UTF8.GetBytes(wire);
        var pending = new List<byte>();
        var done = false;
        var fed = 0;
        while (fed < bytes.Length && !done)
        {
            var take = Math.Min(chunk, bytes.Length - fed);
            pending.AddRange(bytes.Skip(fed).Take(take));
            fed += take;
            var buffer = new ReadOnlySequence<byte>(pending.ToArray());
            done = reader.Process(ref buffer);
            pending = buffer.ToArray().ToList();
        }
        pending.AddRange(bytes.Skip(fed)); // not yet fed: still the client's
        return ((done, Encoding.UTF8.GetString(sink.ToArray()), Encoding.UTF8.GetString(pending.ToArray()), reader.Size), reader);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(1)]
    [InlineData(3)]
    public void Ends_at_crlf_dot_crlf_and_removes_dot_stuffing(int chunk)
    {
        var (done, content, rest, _) = Feed("Subject: x\r\n\r\n..leading\r\n...two\r\nend\r\n.\r\nQUIT\r\n", chunk);
        Assert.True(done);
        Assert.Equal("Subject: x\r\n\r\n.leading\r\n..two\r\nend\r\n", content);
        Assert.Equal("QUIT\r\n", rest);
    }

    [Theory]
    [InlineData("a\n.\nMAIL FROM:<evil@x>\r\n")]
    [InlineData("a\r\n.\nMAIL FROM:<evil@x>\r\n")]
    [InlineData("a\n.\r\nMAIL FROM:<evil@x>\r\n")]
    [InlineData("a\r.\r\nMAIL FROM:<evil@x>\r\n")]
    public void Bare_line_feeds_never_end_the_message(string smuggled)
    {
        // SMTP smuggling: only <CRLF>.<CRLF> ends DATA; everything else is content.
        var (done, content, _, _) = Feed(smuggled);
        Assert.False(done);
        Assert.Contains("MAIL FROM:<evil@x>", content);
    }

    [Theory]
    [InlineData("a\nb\r\n.\r\n", true)]
    [InlineData("a\rb\r\n.\r\n", true)]
    [InlineData("a\r\n\r\r\n.\r\n", true)]
    [InlineData("a\r\nb\r\n.\r\n", false)]
    public void Bare_cr_and_lf_are_noted(string wire, bool bare)
    {
        foreach (var chunk in new[] { int.MaxValue, 1 })
        {
            var (result, reader) = Feed(sink => new DataReader(sink, 1_000_000), wire, chunk);
            Assert.True(result.Done);
            Assert.Equal(bare, reader.BareLineEnding);
        }
    }

    [Fact]
    public void Normalizing_turns_bare_line_ends_into_crlf_and_still_ends_only_at_crlf_dot_crlf()
    {
        var ((done, content, rest, size), _) = Feed(sink => new DataReader(sink, 1_000_000, normalize: true), "a\nb\rc\r\n.\nstill data\r\n.\r\nQUIT\r\n");
        Assert.True(done);
        // ".\n" after a real CRLF is a content line (only CRLF.CRLF ends DATA), dot-unstuffed like any other.
        Assert.Equal("a\r\nb\r\nc\r\n\r\nstill data\r\n", content);
        Assert.Equal(content.Length, size);
        Assert.Equal("QUIT\r\n", rest);
    }

    [Theory]
    [InlineData(998, false)] // 998 + CRLF = 1000
    [InlineData(999, true)]
    public void Lines_over_the_limit_are_noted_even_when_they_come_in_pieces(int length, bool tooLong)
    {
        foreach (var chunk in new[] { int.MaxValue, 7 })
        {
            var (result, reader) = Feed(sink => new DataReader(sink, 1_000_000, lineLimit: 1000), "short\r\n" + new string('x', length) + "\r\n.\r\n", chunk);
            Assert.True(result.Done);
            Assert.Equal(tooLong, reader.LineTooLong);
        }
    }

    [Fact]
    public void Dot_after_a_bare_lf_is_not_unstuffed()
    {
        var (done, content, _, _) = Feed("a\n..b\r\n.\r\n");
        Assert.True(done);
        Assert.Equal("a\n..b\r\n", content);
    }

    [Fact]
    public void Over_the_limit_is_counted_but_not_stored()
    {
        var body = string.Concat(Enumerable.Repeat("0123456789\r\n", 100)); // 1200 octets
        var sink = new MemoryStream();
        var reader = new DataReader(sink, 500);
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(body + ".\r\n"));
        Assert.True(reader.Process(ref buffer));
        Assert.True(reader.TooBig);
        Assert.Equal(1200, reader.Size);
        Assert.True(sink.Length <= 500);
    }

    [Fact]
    public void A_very_long_line_passes_through_in_pieces_and_keeps_its_crlf()
    {
        var line = new string('x', 50_000);
        var (done, content, _, size) = Feed(line + "\r\n.\r\n", chunk: 4096);
        Assert.True(done);
        Assert.Equal(line + "\r\n", content);
        Assert.Equal(50_002, size);
    }
}

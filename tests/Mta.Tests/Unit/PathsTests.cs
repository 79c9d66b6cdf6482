using Mta.Ingress.Smtp;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class PathsTests
{
    [Theory]
    [InlineData("<user@example.org>", "user@example.org")]
    [InlineData(" <user@example.org>", "user@example.org")]
    [InlineData("<>", "")]
    [InlineData("<@relay.example,@b.example:user@example.org>", "user@example.org")]
    [InlineData("<\"john doe\"@example.org>", "\"john doe\"@example.org")]
    [InlineData("<\"a>b\"@example.org>", "\"a>b\"@example.org")]
    [InlineData("<user@[192.0.2.1]>", "user@[192.0.2.1]")]
    [InlineData("<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]")]
    [InlineData("<jürgen@bücher.example>", "jürgen@bücher.example")]
    public void Parses_paths(string text, string expected)
    {
        Assert.True(Paths.TryParse(text, out var address, out _, out _));
        Assert.Equal(expected, address);
    }

    [Theory]
    [InlineData("user@example.org")]
    [InlineData("<user@example.org")]
    [InlineData("<user>")]
    [InlineData("<@example.org>")]
    [InlineData("<user@>")]
    [InlineData("<us er@example.org>")]
    [InlineData("<user@exa mple.org>")]
    [InlineData("<user@example..org>")]
    [InlineData("<user@example.org.>")]
    // Address literals: only a dotted quad or IPv6; nothing else between the brackets reaches a log or a header.
    [InlineData("<a@[x\rX-Forged: 1\u001b[2J]>")]
    [InlineData("<a@[192.0.2.1\r\n]>")]
    [InlineData("<a@[300.1.1.1]>")]
    [InlineData("<a@[192.0.2]>")]
    [InlineData("<a@[::1]>")]
    [InlineData("<a@[IPv6:not-an-address]>")]
    [InlineData("<a@[x-tag:content]>")]
    [InlineData("<a@[]>")]
    // Control and format characters anywhere, quoted or not, ASCII or not.
    [InlineData("<\"a\u001b[2Jb\"@example.org>")]
    [InlineData("<\"a\rb\"@example.org>")]
    [InlineData("<a@exa\u009bmple.org>")]
    [InlineData("<a\u202eb@example.org>")]
    [InlineData("<a@example\u2028.org>")]
    [InlineData("<a\ufffd@example.org>")]
    public void Rejects_malformed_paths(string text)
    {
        Assert.False(Paths.TryParse(text, out _, out _, out _));
    }

    [Fact]
    public void Rejects_overlong_local_part_and_path()
    {
        Assert.False(Paths.TryParse($"<{new string('a', 65)}@example.org>", out _, out _, out _));
        Assert.False(Paths.TryParse($"<a@{string.Join('.', Enumerable.Repeat(new string('b', 60), 5))}>", out _, out _, out _));
    }

    [Fact]
    public void Reads_parameters()
    {
        Assert.True(Paths.TryParse("<a@b.example> SIZE=1000 body=8bitmime", out _, out var p, out _));
        Assert.Equal([new("SIZE", "1000"), new("BODY", "8BITMIME")], p);
    }
}

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

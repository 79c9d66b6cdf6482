using System.Text;
using Mta.Ingress.Auth;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The server side of AUTH PLAIN and LOGIN, without a connection: challenges, refusals and credentials.</summary>
public sealed class SaslExchangeTests
{
    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    [Fact]
    public void Plain_with_an_initial_response_or_after_an_empty_challenge()
    {
        var sasl = new SaslExchange();
        Assert.Equal(new SaslCredentials("alice", "s3cret", "PLAIN"), sasl.Start("plain", B64("\0alice\0s3cret")).Credentials);
        Assert.False(sasl.InProgress);

        Assert.Equal("", sasl.Start("PLAIN", null).Challenge);
        Assert.True(sasl.InProgress);
        Assert.Equal(new SaslCredentials("alice", "s3cret", "PLAIN"), sasl.Continue(B64("alice\0alice\0s3cret")).Credentials);
        Assert.False(sasl.InProgress);
    }

    [Fact]
    public void Login_asks_for_the_name_then_the_password()
    {
        var sasl = new SaslExchange();
        Assert.Equal("VXNlcm5hbWU6", sasl.Start("LOGIN", null).Challenge);
        Assert.Equal("UGFzc3dvcmQ6", sasl.Continue(B64("bob")).Challenge);
        Assert.True(sasl.InProgress);
        Assert.Equal(new SaslCredentials("bob", "pw", "LOGIN"), sasl.Continue(B64("pw")).Credentials);
        Assert.Equal("UGFzc3dvcmQ6", sasl.Start("LOGIN", B64("bob")).Challenge); // the name as initial response
    }

    [Theory]
    [InlineData("PLAIN", "not base64!", "501 5.5.2")]
    [InlineData("PLAIN", "AGFsaWNl", "501 5.5.2")]                 // "\0alice": no password field
    [InlineData("PLAIN", "Ym9iAGFsaWNlAHMzY3JldA==", "535 5.7.8")] // "bob\0alice\0s3cret": acting as someone else
    [InlineData("CRAM-MD5", null, "504 5.5.4")]
    public void Malformed_foreign_and_unknown_are_refused(string mechanism, string? initial, string reply)
        => Assert.StartsWith(reply, new SaslExchange().Start(mechanism, initial).Refusal);

    [Fact]
    public void A_star_cancels_and_the_next_line_is_a_command_again()
    {
        var sasl = new SaslExchange();
        sasl.Start("LOGIN", null);
        Assert.StartsWith("501 5.7.0", sasl.Continue("*").Refusal);
        Assert.False(sasl.InProgress);
    }
}

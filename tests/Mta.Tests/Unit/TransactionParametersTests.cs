using Mta.Ingress.Smtp;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>MAIL and RCPT parameters checked apart from the session: what is kept, and the reply for what is refused.</summary>
public sealed class TransactionParametersTests
{
    private static List<KeyValuePair<string, string>> P(params (string K, string V)[] items) => items.Select(i => KeyValuePair.Create(i.K, i.V)).ToList();

    [Fact]
    public void Mail_parameters_are_kept_decoded()
    {
        var given = MailParameters.Parse(P(("SIZE", "100"), ("BODY", "8BITMIME"), ("RET", "hdrs"), ("ENVID", "QQ+2Bx"), ("SMTPUTF8", "")), esmtp: true, 1000, out _);
        Assert.Equal(new MailParameters("HDRS", "QQ+x", true), given);
    }

    [Theory]
    [InlineData("", "")]
    [InlineData("-_", "-_")]
    public void Xverp_keeps_the_delimiters_asked_for(string value, string kept)
        => Assert.Equal(kept, MailParameters.Parse(P(("XVERP", value)), esmtp: true, 1000, out _)!.Verp);

    [Theory]
    [InlineData("XVERP", "+", "501 5.5.4 Bad XVERP")]
    [InlineData("XVERP", "@=", "501 5.5.4 Bad XVERP")]
    [InlineData("SIZE", "1001", "552 5.3.4")]
    [InlineData("SIZE", "-1", "501 5.5.4 Bad message size")]
    [InlineData("BODY", "BINARYMIME", "501 5.5.4 Bad BODY")]
    [InlineData("RET", "ALL", "501 5.5.4 Bad RET")]
    [InlineData("ENVID", "a+0Db", "501 5.5.4 Bad ENVID")]   // a CR in the decoded id
    [InlineData("SMTPUTF8", "yes", "501 5.5.4 Bad SMTPUTF8")]
    [InlineData("AUTH", "<>", "555 5.5.4 Unsupported option: AUTH")]
    public void Mail_parameters_are_refused_with_their_reply(string key, string value, string reply)
    {
        Assert.Null(MailParameters.Parse(P((key, value)), esmtp: true, 1000, out var refusal));
        Assert.StartsWith(reply, refusal);
    }

    [Fact]
    public void After_helo_no_parameter_is_taken()
    {
        Assert.Null(MailParameters.Parse(P(("SIZE", "1")), esmtp: false, 1000, out var refusal));
        Assert.Equal("555 5.5.4 Unsupported option: SIZE", refusal);
        Assert.Null(RcptParameters.Parse(P(("NOTIFY", "NEVER")), esmtp: false, out refusal));
    }

    [Theory]
    [InlineData("NOTIFY", "success,delay", "SUCCESS,DELAY", null)]
    [InlineData("ORCPT", "rfc822;a+40b.test", null, "rfc822;a@b.test")]
    public void Rcpt_parameters_are_kept_decoded(string key, string value, string? notify, string? orcpt)
        => Assert.Equal(new RcptParameters(notify, orcpt), RcptParameters.Parse(P((key, value)), esmtp: true, out _));

    [Theory]
    [InlineData("NOTIFY", "NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY")]
    [InlineData("NOTIFY", "FAILURE,FAILURE", "501 5.5.4 Bad NOTIFY")]
    [InlineData("ORCPT", "rfc\r822;a@b", "501 5.5.4 Bad ORCPT")]
    [InlineData("ORCPT", "rfc822;a+0Db", "501 5.5.4 Bad ORCPT")]
    [InlineData("SIZE", "1", "555 5.5.4 Unsupported option: SIZE")]
    public void Rcpt_parameters_are_refused_with_their_reply(string key, string value, string reply)
    {
        Assert.Null(RcptParameters.Parse(P((key, value)), esmtp: true, out var refusal));
        Assert.StartsWith(reply, refusal);
    }
}

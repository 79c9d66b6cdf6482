using System.Text;
using Mta.Ingress;
using Mta.Ingress.Milter;
using Mta.Mail.Configuration;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The milter client's rules without a socket: the milter list's syntax, header edits, the header and body split.</summary>
public sealed class MilterRulesTests
{
    private static readonly MilterEndpoint Globals = MilterEndpoint.Defaults(MilterDefaultAction.Tempfail, TimeSpan.FromSeconds(30),
        TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(300), 6);

    [Fact]
    public void The_milter_list_takes_postfix_syntax_with_per_milter_settings()
    {
        var list = MilterEndpoint.ParseList("inet:localhost:8891, unix:/run/opendkim.sock {inet:[::1]:11332, default_action = accept, command_timeout = 10s,content_timeout=2m}", Globals);
        Assert.Equal(3, list.Count);
        Assert.Equal(("localhost", 8891, MilterDefaultAction.Tempfail), (list[0].Host, list[0].Port, list[0].DefaultAction));
        Assert.Equal("/run/opendkim.sock", list[1].Path);
        Assert.Equal(("::1", 11332, MilterDefaultAction.Accept), (list[2].Host, list[2].Port, list[2].DefaultAction));
        Assert.Equal((TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(30)), (list[2].CommandTimeout, list[2].ContentTimeout, list[2].ConnectTimeout));
        Assert.Empty(MilterEndpoint.ParseList("", Globals));
    }

    [Theory]
    [InlineData("inet:host", "neither")]
    [InlineData("tcp:host:25", "neither")]
    [InlineData("inet:host:70000", "neither")]
    [InlineData("{ inet:h:1, default_action = bounce }", "default_action 'bounce'")]
    [InlineData("{ inet:h:1, command_timeout = soon }", "not a time")]
    [InlineData("{ inet:h:1, colour = blue }", "unknown setting 'colour'")]
    [InlineData("{ inet:h:1", "unbalanced")]
    public void A_bad_milter_list_is_refused_naming_the_problem(string list, string problem)
        => Assert.Contains(problem, Assert.Throws<FormatException>(() => MilterEndpoint.ParseList(list, Globals)).Message);

    [Fact]
    public void The_validator_reports_a_bad_milter_list_with_postfix_name()
    {
        var findings = IngressOptionsValidator.Validate(new IngressOptions { Milters = "inet:nowhere" }, new MtaOptions());
        var finding = Assert.Single(findings, f => f.Setting == "Ingress:Milters");
        Assert.Equal("smtpd_milters", finding.Postfix);
        Assert.Contains(IngressOptionsValidator.Validate(new IngressOptions { MilterDefaultAction = "maybe" }, new MtaOptions()), f => f.Setting == "Ingress:Milters");
    }

    private static MilterHeader Header(string text) => MilterHeader.Parse(Encoding.ASCII.GetBytes(text))!;

    [Fact]
    public void Header_edits_follow_postfix_add_insert_change_and_delete_rules()
    {
        var header = Header("Received: one\r\nSubject: hi\r\nX-Tag: a\r\nX-Tag: b\r\n");
        header.Apply(new MilterReply.HeaderChange(MilterReplyCode.AddHeader, -1, "X-Added", "v"), leadingSpace: false);
        header.Apply(new MilterReply.HeaderChange(MilterReplyCode.InsertHeader, 0, "X-Top", "t"), leadingSpace: false);
        header.Apply(new MilterReply.HeaderChange(MilterReplyCode.ChangeHeader, 2, "x-tag", "second\nline"), leadingSpace: false);
        header.Apply(new MilterReply.HeaderChange(MilterReplyCode.ChangeHeader, 1, "X-Tag", ""), leadingSpace: false);
        header.Apply(new MilterReply.HeaderChange(MilterReplyCode.ChangeHeader, 1, "X-Absent", ""), leadingSpace: false); // nothing to delete
        header.Apply(new MilterReply.HeaderChange(MilterReplyCode.ChangeHeader, 0, "X-New", "n"), leadingSpace: true); // index 0 is 1; absent: added
        Assert.Equal("X-Top: t\r\nReceived: one\r\nSubject: hi\r\nX-Tag: second\r\n\tline\r\nX-Added: v\r\nX-New:n\r\n", Encoding.ASCII.GetString(header.ToBytes()));
    }

    [Fact]
    public void Header_values_are_sent_as_sendmail_sends_them_and_nothing_is_lost_in_a_round_trip()
    {
        const string text = "Subject:  two spaces\r\nX-Folded: a\r\n\tb\r\nNot a field line\r\nTo: x\r\n";
        var header = Header(text);
        Assert.Equal(" two spaces", MilterHeader.Sent(header.Fields[0], leadingSpace: false));
        Assert.Equal("  two spaces", MilterHeader.Sent(header.Fields[0], leadingSpace: true));
        Assert.Equal("a\n\tb\nNot a field line", MilterHeader.Sent(header.Fields[1], leadingSpace: false));
        Assert.Equal(text, Encoding.ASCII.GetString(header.ToBytes()));
        Assert.Null(MilterHeader.Parse("no header here\r\n"u8));
    }

    [Theory]
    [InlineData("Subject: x\r\n\r\nbody\r\n", 12, 14)]
    [InlineData("\r\nbody\r\n", 0, 2)]
    [InlineData("Subject: x\r\n", 12, 12)]
    public void The_header_ends_at_the_first_empty_line(string message, int headerLength, int bodyOffset)
        => Assert.Equal((headerLength, bodyOffset), MilterHeader.Split(Encoding.ASCII.GetBytes(message), message.Length));
}

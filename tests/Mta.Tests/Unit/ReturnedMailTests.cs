using MimeKit;
using Mta.Mail.Feedback;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>VERP return paths, the bounce domains setting, and what a returned DSN or ARF report says (issue #23).</summary>
public sealed class ReturnedMailTests
{
    [Theory]
    [InlineData("news@bounces.example.org", "user@example.net", "+=", "news+user=example.net@bounces.example.org")]
    [InlineData("news@bounces.example.org", "user+tag@example.net", "+=", "news+user+tag=example.net@bounces.example.org")]
    [InlineData("news@bounces.example.org", "a=b@example.net", "+=", "news+a=b=example.net@bounces.example.org")]
    [InlineData("news@bounces.example.org", "user@example.net", "-_", "news-user_example.net@bounces.example.org")]
    public void A_verp_return_path_names_its_recipient_and_decodes_back(string owner, string recipient, string delimiters, string expected)
    {
        var encoded = VerpAddress.Encode(owner, recipient, delimiters);
        Assert.Equal(expected, encoded);
        Assert.Equal((owner, recipient), VerpAddress.Decode(encoded, delimiters));
    }

    [Theory]
    [InlineData("fbl@bounces.example.org")]      // no delimiters: a plain address (a feedback loop's)
    [InlineData("news+user@bounces.example.org")] // only the first
    [InlineData("+user=example.net@bounces.example.org")] // no owner
    [InlineData("news+user=@bounces.example.org")]        // no domain
    [InlineData("news+user=localhost@bounces.example.org")] // not a domain on the Internet
    public void What_is_no_verp_address_decodes_to_nothing(string address) => Assert.Null(VerpAddress.Decode(address));

    [Theory]
    [InlineData("+=", true)]
    [InlineData("-_", true)]
    [InlineData("++", false)]
    [InlineData("+", false)]
    [InlineData("@=", false)]
    [InlineData("+ ", false)]
    public void Delimiters_are_two_different_atom_characters(string delimiters, bool valid) => Assert.Equal(valid, VerpAddress.ValidDelimiters(delimiters));

    [Fact]
    public void Bounce_domains_name_their_tenant_and_a_bad_entry_is_named()
    {
        var domains = BounceDomains.Parse(["bounces.acme.example=acme", "Bounces.Example.ORG."]);
        Assert.Equal("acme", domains.TenantOf("news+u=example.net@bounces.acme.example"));
        Assert.Null(domains.TenantOf("x@bounces.example.org"));
        Assert.True(domains.Contains("x@BOUNCES.example.org"));
        Assert.False(domains.Contains("x@example.org"));
        Assert.Contains("'localhost'", Assert.Throws<FormatException>(() => BounceDomains.Parse(["localhost"])).Message);
        Assert.Contains("tenant", Assert.Throws<FormatException>(() => BounceDomains.Parse(["b.example=a b"])).Message);
        Assert.Contains("again", Assert.Throws<FormatException>(() => BounceDomains.Parse(["b.example", "B.example=x"])).Message);
    }

    // As Postfix's bounce(8) writes one (RFC 3464), for two recipients: one failed, one delayed.
    private const string Dsn = """
        From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
        To: news+gone=example.net@bounces.example.org
        Subject: Undelivered Mail Returned to Sender
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

        --B1
        Content-Type: text/plain

        I'm sorry to have to inform you that your message could not be delivered.

        --B1
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.net
        Arrival-Date: Thu,  3 Dec 2026 08:00:00 +0000

        Final-Recipient: rfc822; mailbox@store.example.net
        Original-Recipient: rfc822;gone@example.net
        Action: failed
        Status: 5.1.1
        Remote-MTA: dns; store.example.net
        Diagnostic-Code: smtp; 550 5.1.1 <mailbox@store.example.net>: Recipient address
            rejected: User unknown in local recipient table

        Final-Recipient: rfc822; slow@example.net
        Action: delayed
        Status: 4.4.1

        --B1
        Content-Type: text/rfc822-headers

        From: news@example.org
        To: gone@example.net
        Subject: December

        --B1--
        """;

    // RFC 5965's example, shortened.
    private const string Arf = """
        From: <abusedesk@example.com>
        To: <fbl@bounces.example.org>
        Subject: FW: Earn money
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report; boundary="part1_13d.2e68ed54_boundary"

        --part1_13d.2e68ed54_boundary
        Content-Type: text/plain; charset="US-ASCII"

        This is an email abuse report for an email message received from IP 192.0.2.1 on Thu, 8 Mar 2005.

        --part1_13d.2e68ed54_boundary
        Content-Type: message/feedback-report

        Feedback-Type: abuse
        User-Agent: SomeGenerator/1.0
        Version: 1
        Original-Mail-From: <news@bounces.example.org>
        Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
        Source-IP: 192.0.2.1

        --part1_13d.2e68ed54_boundary
        Content-Type: message/rfc822
        Content-Disposition: inline

        From: <news@example.org>
        To: <Complainer@example.com>
        Subject: Earn money

        Spam Spam Spam

        --part1_13d.2e68ed54_boundary--
        """;

    private static MimeMessage Parse(string text) => MimeMessage.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text.Replace("\n", "\r\n"))));

    [Fact]
    public void A_dsn_gives_its_failed_recipients_with_status_reply_and_remote_host_and_not_its_delayed_ones()
    {
        var notice = Assert.Single(ReturnedReport.Read(Parse(Dsn), verpRecipient: null));
        Assert.Equal(ReturnKind.Bounce, notice.Kind);
        Assert.Equal("gone@example.net", notice.Recipient); // Original-Recipient before Final-Recipient
        Assert.Equal("5.1.1", notice.Status);
        Assert.Equal("550 5.1.1 <mailbox@store.example.net>: Recipient address rejected: User unknown in local recipient table", notice.Detail);
        Assert.Equal("store.example.net", notice.RemoteMta);
    }

    [Fact]
    public void The_verp_recipient_is_the_one_a_report_is_about_whatever_its_fields_say()
    {
        var notice = Assert.Single(ReturnedReport.Read(Parse(Dsn), verpRecipient: "first@example.net"));
        Assert.Equal("first@example.net", notice.Recipient);
        Assert.Equal("first@example.net", Assert.Single(ReturnedReport.Read(Parse(Arf), "first@example.net")).Recipient);
    }

    [Fact]
    public void An_arf_report_is_a_complaint_about_the_enclosed_messages_recipient()
    {
        var notice = Assert.Single(ReturnedReport.Read(Parse(Arf), verpRecipient: null));
        Assert.Equal((ReturnKind.Complaint, "Complainer@example.com"), (notice.Kind, notice.Recipient));
        Assert.Equal("feedback-type=abuse (SomeGenerator/1.0)", notice.Detail);
        Assert.Empty(ReturnedReport.Read(Parse(Arf.Replace("Feedback-Type: abuse", "Feedback-Type: not-spam")), null));
        var withRcptTo = Arf.Replace("Version: 1", "Version: 1\nOriginal-Rcpt-To: <listed@example.com>");
        Assert.Equal("listed@example.com", Assert.Single(ReturnedReport.Read(Parse(withRcptTo), null)).Recipient);
    }

    [Fact]
    public void An_auto_reply_or_a_text_bounce_says_nothing()
    {
        const string vacation = "From: someone@example.net\nTo: news+someone=example.net@bounces.example.org\nAuto-Submitted: auto-replied\nSubject: Out of office\n\nBack on Monday.\n";
        Assert.Empty(ReturnedReport.Read(Parse(vacation), "someone@example.net"));
        const string text = "From: MAILER-DAEMON@old.example\nSubject: failure notice\n\nSorry, no mailbox here by that name. (#5.1.1)\n";
        Assert.Empty(ReturnedReport.Read(Parse(text), "someone@example.net"));
    }

    [Fact]
    public void Tags_come_from_the_envelope_the_chosen_header_fields_and_the_login()
    {
        var fields = new HeaderList { { "X-Campaign", "  dec\r\n 2026\u0007 " }, { "Subject", "hello" } };
        var envelope = new Mta.Mail.Contracts.IncomingEnvelope
        {
            Id = "A1", Sender = "a@example.org", Recipients = ["b@example.net"], ClientAddress = "192.0.2.1", Helo = "h",
            ArrivalTime = DateTimeOffset.UnixEpoch, Size = 1, BlobName = "A1", Login = "alice",
            Tags = new Dictionary<string, string> { ["tenant"] = "acme", ["x-campaign"] = "from the api" },
        };
        var tags = Mta.Mail.Events.EventTags.Of(envelope, fields, ["X-Campaign", "X-Missing"])!;
        Assert.Equal(["tenant:acme", "x-campaign:from the api"], tags.Select(t => $"{t.Key}:{t.Value}").Order()); // injected: the tenant says who
        var submitted = Mta.Mail.Events.EventTags.Of(envelope with { Tags = null }, fields, ["X-Campaign"])!;
        Assert.Equal(["login:alice", "x-campaign:dec 2026"], submitted.Select(t => $"{t.Key}:{t.Value}").Order());
        Assert.Null(Mta.Mail.Events.EventTags.Of(envelope with { Tags = null, Login = null }, fields, []));
    }
}

using System.Text.Json;
using Mta.Ingress.Injection;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>The injection API's request checks and message building: fields named by JSON pointers, strict templates.</summary>
public sealed class InjectionComposerTests
{
    private static readonly InjectionClient Client = new("acme", new HashSet<string>(["example.org"], StringComparer.OrdinalIgnoreCase));

    private static (InjectionComposer? Composer, IReadOnlyList<InjectionProblem> Problems) Prepare(string json, int maxRecipients = 100)
        => InjectionComposer.Prepare(JsonSerializer.Deserialize<InjectionRequest>(json)!, Client, maxRecipients, 1_000_000);

    private const string Parts = """
        "content": { "from": { "email": "news@example.org", "name": "Acme News" }, "subject": "Hello {{ name }}",
                     "text_body": "Dear {{ name }}, your code is {{ code }}.", "html_body": "<p>{{ name }}</p>",
                     "headers": { "X-Campaign": "{{ campaign }}" } }
        """;

    [Fact]
    public void Each_recipient_gets_its_own_values_over_the_shared_ones()
    {
        var (composer, problems) = Prepare($$"""
            { "envelope_sender": "bounces@example.org", "substitutions": { "campaign": "dec", "code": 0 },
              "recipients": [ { "email": "a@rcpt.test", "name": "A", "substitutions": { "name": "Ann", "code": 17 } },
                              { "email": "b@rcpt.test", "substitutions": { "name": "<Bob & co>" } } ],
              {{Parts}} }
            """);
        Assert.Empty(problems);
        var first = composer!.Compose(0).Message!;
        Assert.Equal("Hello Ann", first.Subject);
        Assert.Equal("Dear Ann, your code is 17.", first.TextBody!.Trim());
        Assert.Equal("dec", first.Headers["X-Campaign"]);
        Assert.Equal("\"A\" <a@rcpt.test>", first.To.ToString());
        Assert.Equal("\"Acme News\" <news@example.org>", first.From.ToString());
        var second = composer.Compose(1).Message!;
        Assert.Equal("Dear <Bob & co>, your code is 0.", second.TextBody!.Trim()); // text as given
        Assert.Contains("&lt;Bob &amp; co&gt;", second.HtmlBody);                  // HTML escaped: values are data
        Assert.Equal(["a@rcpt.test", "b@rcpt.test"], composer.Recipients);
    }

    [Fact]
    public void A_raw_message_is_substituted_and_parsed()
    {
        var (composer, problems) = Prepare("""
            { "envelope_sender": "bounces@example.org", "recipients": [ { "email": "a@rcpt.test", "substitutions": { "n": 3 } } ],
              "content": "From: x@example.org\r\nTo: a@rcpt.test\r\nSubject: raw {{ n }}\r\n\r\nbody {{ n }}\r\n" }
            """);
        Assert.Empty(problems);
        var message = composer!.Compose(0).Message!;
        Assert.Equal("raw 3", message.Subject);
        Assert.Equal("body 3", message.TextBody!.Trim());
    }

    [Fact]
    public void A_field_no_substitution_supplies_names_the_recipient_and_the_field()
    {
        var (composer, problems) = Prepare($$"""
            { "envelope_sender": "bounces@example.org", "substitutions": { "campaign": "dec", "code": 1 },
              "recipients": [ { "email": "a@rcpt.test", "substitutions": { "name": "Ann" } }, { "email": "b@rcpt.test" } ], {{Parts}} }
            """);
        Assert.Empty(problems);
        Assert.Null(composer!.Compose(0).Problem);
        var problem = composer.Compose(1).Problem!;
        Assert.Equal("/recipients/1/substitutions", problem.Pointer);
        Assert.Contains("name", problem.Detail);
    }

    [Theory]
    [InlineData("""{ "recipients": [ { "email": "a@rcpt.test" } ], "content": "x" }""", "/envelope_sender")]
    [InlineData("""{ "envelope_sender": "b@other.test", "recipients": [ { "email": "a@rcpt.test" } ], "content": "x" }""", "/envelope_sender")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [], "content": "x" }""", "/recipients")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" }, { "email": "not an address" } ], "content": "x" }""", "/recipients/1/email")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test>\r\nRCPT TO:<c@evil.test" } ], "content": "x" }""", "/recipients/0/email")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ] }""", "/content")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ], "content": "{{ unclosed" }""", "/content")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ], "content": { "from": { "email": "x" }, "text_body": "t" } }""", "/content/from/email")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ], "content": { "from": { "email": "x@example.org" } } }""", "/content/text_body")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ], "content": { "from": { "email": "x@example.org" }, "text_body": "t", "headers": { "Bad Name": "v" } } }""", "/content/headers/Bad Name")]
    [InlineData("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ], "content": { "from": { "email": "x@example.org" }, "text_body": "t", "headers": { "To": "v" } } }""", "/content/headers/To")]
    public void Bad_requests_name_the_field(string json, string pointer)
    {
        var (composer, problems) = Prepare(json);
        Assert.Null(composer);
        Assert.Contains(problems, p => p.Pointer == pointer);
    }

    [Theory]
    [InlineData("$.recipients[2].email", "/recipients/2/email")]
    [InlineData("$.envelope_sender", "/envelope_sender")]
    [InlineData("$", "")]
    [InlineData(null, "")]
    public void Json_paths_become_pointers(string? path, string pointer) => Assert.Equal(pointer, InjectionComposer.Pointer(path));

    [Fact]
    public void More_recipients_than_a_request_may_have_are_refused()
        => Assert.Contains(Prepare("""{ "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" }, { "email": "b@rcpt.test" } ], "content": "x" }""",
            maxRecipients: 1).Problems, p => p.Pointer == "/recipients" && p.Detail.Contains("more than the 1"));

    [Fact]
    public void Token_lines_hold_only_the_hash_and_give_the_tenant_and_its_domains()
    {
        var hash = InjectionTokens.Hash("s3cret-token");
        var tokens = InjectionTokens.Parse(["# tenant hash domains", $"acme {hash} example.org,Example.NET", ""], "tokens");
        var client = tokens[hash];
        Assert.Equal("acme", client.Tenant);
        Assert.True(client.MaySendAs("x@EXAMPLE.net"));
        Assert.False(client.MaySendAs("x@example.com"));
        Assert.DoesNotContain("s3cret-token", hash);
        Assert.Contains("tokens:1", Assert.Throws<FormatException>(() => InjectionTokens.Parse(["acme s3cret-token example.org"], "tokens")).Message);
    }
}

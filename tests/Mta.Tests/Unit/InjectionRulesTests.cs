using System.Text.Json;
using Mta.Ingress.Acceptance;
using Mta.Ingress.Injection;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>
/// The injection API's rules apart from storage: what a request under an idempotency key does, the per-tenant wait,
/// the DSN options and tags, attachments, messages that come out equal, and ids a retry repeats.
/// </summary>
public sealed class InjectionRulesTests
{
    private static readonly InjectionClient Client = new("acme", new HashSet<string>(["example.org"], StringComparer.OrdinalIgnoreCase));
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 6, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    private static InjectionLedger.Entry Entry(string hash = "AB", bool done = false, TimeSpan? age = null, TimeSpan? lease = null)
        => new(hash, Now - (age ?? TimeSpan.FromMinutes(1)), "0A0B0C", 10, 4, done, Now + (lease ?? TimeSpan.FromSeconds(-1)), null, default);

    [Fact]
    public void A_key_is_fresh_replayed_resumed_busy_or_misused()
    {
        Assert.Equal(InjectionLedger.Verdict.Fresh, InjectionLedger.Decide(null, "AB", Now, Day));
        Assert.Equal(InjectionLedger.Verdict.Fresh, InjectionLedger.Decide(Entry(age: Day + TimeSpan.FromSeconds(1)), "CD", Now, Day)); // forgotten
        Assert.Equal(InjectionLedger.Verdict.Replay, InjectionLedger.Decide(Entry(done: true), "AB", Now, Day));
        Assert.Equal(InjectionLedger.Verdict.Mismatch, InjectionLedger.Decide(Entry(done: true), "CD", Now, Day));
        Assert.Equal(InjectionLedger.Verdict.Mismatch, InjectionLedger.Decide(Entry(lease: TimeSpan.FromSeconds(20)), "CD", Now, Day));
        Assert.Equal(InjectionLedger.Verdict.InProgress, InjectionLedger.Decide(Entry(lease: TimeSpan.FromSeconds(20)), "AB", Now, Day));
        Assert.Equal(InjectionLedger.Verdict.Resume, InjectionLedger.Decide(Entry(), "AB", Now, Day)); // the lease ran out: the run stopped
    }

    [Fact]
    public void Ids_repeat_for_the_same_start_and_salt_and_never_look_like_smtp_ids()
    {
        var start = DateTimeOffset.FromUnixTimeMilliseconds(1_796_000_000_123);
        Assert.Equal(QueueId.Injected(start, "0A0B0C", 17), QueueId.Injected(start, "0A0B0C", 17));
        Assert.Equal(QueueId.New(start)[..10] + "0A0B0C0011", QueueId.Injected(start, "0A0B0C", 17));
        Assert.Equal(65_535, Enumerable.Range(0, 65_535).Select(n => QueueId.Injected(start, "0A0B0C", n)).Distinct().Count());
        Assert.Equal(20, QueueId.Injected(start, QueueId.NewSalt(), 0).Length);
        Assert.Equal(16, QueueId.New(start).Length);
    }

    [Theory]
    [InlineData(0, 1, 0)]          // an empty schedule: now
    [InlineData(0, 5, 0)]          // a whole window's burst: now
    [InlineData(36, 2, 0)]         // 3 of 5 taken at 12 s each: 2 more fit now
    [InlineData(36, 3, 12)]        // a third waits for the first to free
    [InlineData(60, 5, 60)]        // all taken: a full burst again after a window
    public void The_wait_is_until_the_schedule_holds_every_message_of_the_request(int tatSeconds, int count, int waitSeconds)
    {
        var window = TimeSpan.FromSeconds(60);
        var now = Now.UtcTicks;
        var tat = tatSeconds == 0 ? 0 : now + TimeSpan.FromSeconds(tatSeconds).Ticks;
        Assert.Equal(TimeSpan.FromSeconds(waitSeconds), TenantRates.WaitFor(tat, now, 5, window, count));
        // And the schedule agrees: at the wait, all are granted; just before it, not all.
        var at = now + TimeSpan.FromSeconds(waitSeconds).Ticks;
        Assert.Equal(count, Mta.Ingress.Policy.RateBudget.Take(tat, at, 5, window, count).Granted);
        if (waitSeconds > 0) Assert.True(Mta.Ingress.Policy.RateBudget.Take(tat, at - TimeSpan.TicksPerSecond, 5, window, count).Granted < count);
    }

    [Theory]
    [InlineData("failure, delay", "FAILURE,DELAY")]
    [InlineData("DELAY,SUCCESS,FAILURE", "SUCCESS,FAILURE,DELAY")]
    [InlineData("never", "NEVER")]
    [InlineData("NEVER,FAILURE", null)]
    [InlineData("FAILURE,FAILURE", null)]
    [InlineData("SOMETIMES", null)]
    [InlineData("", null)]
    public void Notify_is_rfc_3461s(string given, string? canonical) => Assert.Equal(canonical, InjectionMetadata.Notify(given));

    private static IReadOnlyList<InjectionProblem> Problems(string extra)
        => InjectionComposer.Prepare(JsonSerializer.Deserialize<InjectionRequest>($$"""
            { "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ], {{extra}} }
            """)!, Client, 100, 1_000_000).Problems;

    [Theory]
    [InlineData("""  "content": "Subject: x\r\n\r\nx\r\n", "dsn": { "ret": "BODY" }  """, "/dsn/ret")]
    [InlineData("""  "content": "Subject: x\r\n\r\nx\r\n", "dsn": { "envid": "has space" }  """, "/dsn/envid")]
    [InlineData("""  "content": "Subject: x\r\n\r\nx\r\n", "dsn": { "notify": "ALWAYS" }  """, "/dsn/notify")]
    [InlineData("""  "content": "Subject: x\r\n\r\nx\r\n", "tags": { "Campaign": "x" }  """, "/tags/Campaign")]
    [InlineData("""  "content": "Subject: x\r\n\r\nx\r\n", "tags": { "tenant": "someone-else" }  """, "/tags/tenant")]
    [InlineData("""  "content": "Subject: x\r\n\r\nx\r\n", "tags": { "campaign": "a,b" }  """, "/tags/campaign")]
    [InlineData("""  "content": { "from": { "email": "n@example.org" }, "text_body": "x", "attachments": [ { "file_name": "a.pdf", "data": "not base64!" } ] }  """, "/content/attachments/0/data")]
    [InlineData("""  "content": { "from": { "email": "n@example.org" }, "text_body": "x", "attachments": [ { "data": "eA==" } ] }  """, "/content/attachments/0/file_name")]
    [InlineData("""  "content": { "from": { "email": "n@example.org" }, "text_body": "x", "attachments": [ { "file_name": "a", "data": "eA==", "content_type": "nonsense" } ] }  """, "/content/attachments/0/content_type")]
    public void A_bad_option_is_named_by_its_pointer(string extra, string pointer)
        => Assert.Contains(Problems(extra), p => p.Pointer == pointer);

    [Fact]
    public void Good_options_pass_and_become_the_envelopes_dsn_and_tags()
    {
        var request = JsonSerializer.Deserialize<InjectionRequest>("""
            { "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ], "content": "Subject: x\r\n\r\nx\r\n",
              "dsn": { "ret": "hdrs", "envid": "req-1", "notify": "delay,failure" }, "tags": { "campaign": "dec-2026" } }
            """)!;
        Assert.Empty(InjectionComposer.Prepare(request, Client, 100, 1_000_000).Problems);
        var dsn = InjectionMetadata.Dsn(request, ["a@rcpt.test"])!;
        Assert.Equal(("HDRS", "req-1", "FAILURE,DELAY"), (dsn.Ret, dsn.EnvelopeId, dsn.Recipients["a@rcpt.test"].Notify));
        Assert.Equal(new Dictionary<string, string> { ["campaign"] = "dec-2026", ["tenant"] = "acme" }, InjectionMetadata.Tags(request, "acme"));
        Assert.Null(InjectionMetadata.Dsn(JsonSerializer.Deserialize<InjectionRequest>("{}")!, ["a@rcpt.test"]));
    }

    [Fact]
    public void Attachments_are_attached_and_inline_ones_are_linked_by_content_id()
    {
        var (composer, problems) = InjectionComposer.Prepare(JsonSerializer.Deserialize<InjectionRequest>("""
            { "envelope_sender": "b@example.org", "recipients": [ { "email": "a@rcpt.test" } ],
              "content": { "from": { "email": "n@example.org" }, "text_body": "see", "html_body": "<img src=\"cid:logo\">",
                "attachments": [ { "file_name": "terms.pdf", "content_type": "application/pdf", "data": "JVBERi0xLjQ=" },
                                 { "file_name": "logo.png", "content_type": "image/png", "data": "iVBORw0=", "content_id": "logo" } ] } }
            """)!, Client, 100, 1_000_000);
        Assert.Empty(problems);
        var message = composer!.Compose(0).Message!;
        var pdf = Assert.Single(message.Attachments.OfType<MimeKit.MimePart>());
        Assert.Equal(("terms.pdf", "application/pdf"), (pdf.FileName, pdf.ContentType.MimeType));
        using var bytes = new MemoryStream();
        pdf.Content!.DecodeTo(bytes);
        Assert.Equal("%PDF-1.4", System.Text.Encoding.ASCII.GetString(bytes.ToArray()));
        var logo = message.BodyParts.OfType<MimeKit.MimePart>().Single(p => p.ContentId == "logo");
        Assert.Equal("image/png", logo.ContentType.MimeType);
        Assert.Null(message.MessageId); // stamped only when its queue id is known
        var stamped = MimeKit.MimeMessage.Load(new MemoryStream([.. composer.Stamp(Now, "A23A5C2115F72A7501BD"), .. composer.Render(0).Octets!]));
        Assert.Equal(("A23A5C2115F72A7501BD@example.org", Now), (stamped.MessageId, stamped.Date));
        Assert.Equal(2, stamped.Attachments.Count() + stamped.BodyParts.OfType<MimeKit.MimePart>().Count(p => p.ContentId == "logo"));
    }

    [Fact]
    public void Recipients_whose_messages_come_out_equal_share_one_message()
    {
        var (composer, _) = InjectionComposer.Prepare(JsonSerializer.Deserialize<InjectionRequest>("""
            { "envelope_sender": "b@example.org",
              "recipients": [ { "email": "a@rcpt.test", "substitutions": { "v": "x" } }, { "email": "b@rcpt.test", "substitutions": { "v": "y" } },
                              { "email": "c@rcpt.test", "substitutions": { "v": "x" } }, { "email": "d@other.test", "substitutions": { "v": "x" } } ],
              "content": "Subject: {{ v }}\n\nSame body." }
            """)!, Client, 100, 1_000_000);
        var (plan, problem) = InjectionPlan.Rehearse(composer!, 1_000_000);
        Assert.Null(problem);
        Assert.Equal([[0, 2, 3], [1]], plan!.Messages);

        // A raw message is taken as written, its line ends made CRLF.
        Assert.Equal("Subject: x\r\n\r\nSame body.\r\n", System.Text.Encoding.UTF8.GetString(plan.Octets(0)!));
        var (_, tooLarge) = InjectionPlan.Rehearse(composer!, 20);
        Assert.Equal(("/recipients/0", 413), (tooLarge!.Pointer, tooLarge.Status));
    }

    [Fact]
    public void The_prefix_is_what_is_queued_from_the_first_message_on()
    {
        Assert.Equal(0, InjectionRun.Prefix([false, true, true]));
        Assert.Equal(2, InjectionRun.Prefix([true, true, false, true]));
        Assert.Equal(3, InjectionRun.Prefix([true, true, true]));
    }
}

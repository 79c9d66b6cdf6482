using System.Text;
using Azure.Storage.Queues;
using Mta.Ingress.Injection;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The HTTP injection API (<c>POST /api/inject/v1</c>) driven by Python's urllib and by curl: a message per recipient,
/// queued as SMTP mail is; a request that cannot be injected queues nothing and names the field.
/// </summary>
public sealed class InjectionApiTests
{
    private const string Token = "tok-2f9c1e7a5b";

    private static async Task<(MtaSystem Mta, int Port)> StartAsync(string storage, IDictionary<string, string?>? more = null, bool functions = false)
    {
        var tokens = Path.Combine(TestEnvironment.TempFolder("inject"), "tokens");
        await File.WriteAllTextAsync(tokens, $"acme {InjectionTokens.Hash(Token)} example.org\nother {InjectionTokens.Hash("tok-other")} other.test\n");
        var port = TestEnvironment.FreeTcpPort();
        var settings = new Dictionary<string, string?>
        {
            ["Ingress:InjectionPort"] = port.ToString(), ["Ingress:InjectionTokensFile"] = tokens,
            ["Ingress:InjectionPlainHttp"] = "true", // the clients are on loopback
        };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>()) settings[key] = value;
        return (await MtaSystem.StartAsync(storage, settings, functions: functions), port);
    }

    /// <summary>Every delivery job on the queue, received (not peeked: there are more than 32 queue messages) and left invisible.</summary>
    private static async Task<List<DeliveryJob>> AllJobsAsync(string storage)
    {
        var queue = new QueueClient(storage, QueueNames.Delivery, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });
        var jobs = new List<DeliveryJob>();
        if (!(await queue.ExistsAsync()).Value) return jobs;
        while ((await queue.ReceiveMessagesAsync(32, TimeSpan.FromMinutes(5))).Value is { Length: > 0 } batch)
            jobs.AddRange(batch.SelectMany(m => DeliveryBatch.Parse(m.MessageText)));
        return jobs;
    }

    private static object Small(int recipients, string subject = "Hello") => new
    {
        envelope_sender = "bounces@example.org",
        recipients = Enumerable.Range(0, recipients).Select(i => new { email = $"user{i}@localhost" }),
        content = $"From: news@example.org\r\nSubject: {subject}\r\n\r\nThe same for everyone.\r\n",
    };

    [SkippableFact]
    public async Task The_same_key_and_body_replays_the_answer_a_new_body_under_it_is_refused_and_equal_messages_are_stored_once()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var (mta, port) = await StartAsync(azurite.ConnectionString);
        await using var _ = mta;

        // One content for all: one message with every recipient, routed into one job per next hop by cleanup.
        var first = await InjectionDeliveryTests.PostAsync(port, Small(40), key: "k-1", token: Token);
        Assert.True(first.Status == 202, first.Body.ToString());
        var id = Assert.Single(first.QueueIds);
        var job = Assert.Single(await AllJobsAsync(azurite.ConnectionString));
        Assert.Equal((id, 40), (job.MessageId, job.Recipients.Count));
        Assert.NotNull(job.Claim); // a keyed request's jobs claim their first attempt

        var replay = await InjectionDeliveryTests.PostAsync(port, Small(40), key: "k-1", token: Token);
        Assert.Equal((202, true), (replay.Status, replay.Replayed));
        Assert.Equal(first.QueueIds, replay.QueueIds);
        var other = await InjectionDeliveryTests.PostAsync(port, Small(40, "Changed"), key: "k-1", token: Token);
        Assert.Equal(422, other.Status);
        Assert.Contains("Idempotency-Key was used for a different request", other.Body.ToString());
        Assert.Empty(await AllJobsAsync(azurite.ConnectionString)); // nothing more was queued (the first job is still invisible)

        // Without a key nothing is remembered: the same body is a new request.
        var unkeyed = await InjectionDeliveryTests.PostAsync(port, Small(40), token: Token);
        Assert.Equal(202, unkeyed.Status);
        Assert.NotEqual(id, Assert.Single(unkeyed.QueueIds));
        Assert.Null(Assert.Single(await AllJobsAsync(azurite.ConnectionString)).Claim);
    }

    [SkippableFact]
    public async Task A_tenant_past_its_message_rate_gets_429_with_retry_after_and_nothing_is_queued()
    {
        await using var azurite = await Azurite.LeaseAsync();
        var (mta, port) = await StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:InjectionMessageRatePerTenant"] = "5", ["Ingress:InjectionRateWindowSeconds"] = "60",
        });
        await using var _ = mta;
        var personal = (int n) => new
        {
            envelope_sender = "bounces@example.org",
            recipients = Enumerable.Range(0, n).Select(i => new { email = $"user{i}@localhost", substitutions = new { i } }),
            content = "Subject: {{ i }}\r\n\r\nx\r\n",
        };
        Assert.Equal(202, (await InjectionDeliveryTests.PostAsync(port, personal(3), token: Token)).Status);
        var limited = await InjectionDeliveryTests.PostAsync(port, personal(3), token: Token);
        Assert.True(limited.Status == 429, limited.Body.ToString());
        Assert.InRange(int.Parse(limited.RetryAfter), 1, 60);
        Assert.Contains("more than 5 messages per 60 s for tenant acme", limited.Body.ToString());
        var never = await InjectionDeliveryTests.PostAsync(port, personal(6), token: Token);
        Assert.Equal(422, never.Status); // more than a whole time unit allows: no wait would help
        Assert.Equal(3, (await AllJobsAsync(azurite.ConnectionString)).Count);
    }

    public static TheoryData<string, string, int, string> Refusals => new()
    {
        { Token, "{ not json", 400, "\"title\":\"the body is not the JSON expected\"" },
        { Token, """{"envelope_sender":"b@example.org","recipients":[{"email":"a@localhost"},{"email":"nope"}],"content":"Subject: x\r\n\r\nx\r\n"}""", 422, "/recipients/1/email" },
        { Token, """{"envelope_sender":"b@example.org","recipients":[{"email":"a@localhost","substitutions":{"n":1}},{"email":"b@localhost"}],"content":"Subject: {{ n }}\r\n\r\nx\r\n"}""", 422, "/recipients/1/substitutions" },
        { "tok-other", """{"envelope_sender":"b@example.org","recipients":[{"email":"a@localhost"}],"content":"Subject: x\r\n\r\nx\r\n"}""", 403, "/envelope_sender" },
        { "wrong", """{"envelope_sender":"b@example.org","recipients":[{"email":"a@localhost"}],"content":"Subject: x\r\n\r\nx\r\n"}""", 401, "no valid bearer token" },
        { Token, """{"envelope_sender":"b@example.org","recipients":[{"email":"a@localhost"}],"content":"Subject: x\r\n\r\n""" + new string('x', 3000) + "\"}", 413, "larger than the message size limit" },
    };

    [SkippableTheory]
    [MemberData(nameof(Refusals))]
    public async Task A_request_that_cannot_be_injected_queues_nothing_and_names_the_field(string token, string body, int status, string named)
    {
        var curl = TestEnvironment.RequireTool("curl");
        await using var azurite = await Azurite.LeaseAsync();
        var (mta, port) = await StartAsync(azurite.ConnectionString, new Dictionary<string, string?> { ["Ingress:MessageSizeLimit"] = "2000" });
        await using var _ = mta;
        var file = Path.Combine(TestEnvironment.TempFolder("inject"), "body.json");
        await File.WriteAllTextAsync(file, body);
        var (exit, output) = await EndToEndTests.RunAsync(curl, "-s", "-w", "\n%{http_code} %{content_type}", "-H", $"Authorization: Bearer {token}",
            "-H", "Content-Type: application/json", "--data-binary", "@" + file, $"http://127.0.0.1:{port}/api/inject/v1");
        Assert.True(exit == 0, output);
        Assert.EndsWith($"{status} application/problem+json", output.Trim());
        Assert.Contains(named, output);
        Assert.Empty(await AllJobsAsync(azurite.ConnectionString));
    }
    [SkippableFact]
    public async Task The_api_answers_on_its_own_port_only()
    {
        var curl = TestEnvironment.RequireTool("curl");
        await using var azurite = await Azurite.LeaseAsync();
        var health = TestEnvironment.FreeTcpPort();
        var (mta, port) = await StartAsync(azurite.ConnectionString, new Dictionary<string, string?> { ["Ingress:HealthPort"] = health.ToString() });
        await using var _1 = mta;
        // The OpenAPI document is served on the API's port, as committed; not on the health port.
        var document = Path.Combine(TestEnvironment.TempFolder("inject"), "openapi.json");
        var (got, status) = await EndToEndTests.RunAsync(curl, "-s", "-o", document, "-w", "%{http_code} %{content_type}", $"http://127.0.0.1:{port}/api/inject/v1/openapi.json");
        Assert.Equal((0, "200 application/json"), (got, status.Trim()));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(TestEnvironment.RepoRoot, "docs", "api", "inject-v1.openapi.json")), await File.ReadAllBytesAsync(document));
        Assert.Equal((0, "404"), await EndToEndTests.RunAsync(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", $"http://127.0.0.1:{health}/api/inject/v1/openapi.json"));
        var (exit, output) = await EndToEndTests.RunAsync(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", $"Authorization: Bearer {Token}",
            "-H", "Content-Type: application/json", "--data-binary", """{"envelope_sender":"b@example.org","recipients":[{"email":"a@localhost"}],"content":"Subject: x\r\n\r\nx\r\n"}""",
            $"http://127.0.0.1:{health}/api/inject/v1");
        Assert.Equal((0, "404"), (exit, output.Trim()));
        Assert.Empty(await AllJobsAsync(azurite.ConnectionString));
    }
}

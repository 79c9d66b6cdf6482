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

    [SkippableFact]
    public async Task A_thousand_recipients_with_substitutions_become_a_thousand_queued_messages()
    {
        var python = TestEnvironment.RequireTool("python3");
        await using var azurite = await Azurite.LeaseAsync();
        var (mta, port) = await StartAsync(azurite.ConnectionString);
        await using var _ = mta;
        var script = $$$"""
            import json, urllib.request
            body = {
                "envelope_sender": "bounces@example.org",
                "substitutions": {"campaign": "dec-2026"},
                "recipients": [{"email": f"user{i}@localhost", "substitutions": {"n": i}} for i in range(1000)],
                "content": {"from": {"email": "news@example.org", "name": "Acme"}, "subject": "Number {{ n }}",
                            "text_body": "Your number is {{ n }}.", "headers": {"X-Campaign": "{{ campaign }}"}},
            }
            request = urllib.request.Request("http://127.0.0.1:{{{port}}}/api/inject/v1", data=json.dumps(body).encode(),
                headers={"Authorization": "Bearer {{{Token}}}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request) as response:
                print(response.status)
                print(json.dumps(json.load(response)))
            """;
        var file = Path.Combine(TestEnvironment.TempFolder("inject"), "inject.py");
        await File.WriteAllTextAsync(file, script);
        var (exit, output) = await EndToEndTests.RunAsync(python, file);
        Assert.True(exit == 0, output);
        var lines = output.Trim().Split('\n');
        Assert.Equal("202", lines[0].Trim());
        var ids = System.Text.Json.JsonDocument.Parse(lines[1]).RootElement.GetProperty("queue_ids").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Equal(1000, ids.Distinct().Count());

        var jobs = await AllJobsAsync(azurite.ConnectionString);
        Assert.Equal(1000, jobs.Count);
        Assert.Equal(ids.Order(), jobs.Select(j => j.MessageId).Order());
        foreach (var job in jobs)
        {
            var n = int.Parse(Assert.Single(job.Recipients)["user".Length..^"@localhost".Length]);
            var text = Encoding.UTF8.GetString(job.Content!);
            Assert.Contains($"Subject: Number {n}\r\n", text);
            Assert.Contains($"Your number is {n}.", text);
            Assert.Contains("X-Campaign: dec-2026\r\n", text);
            Assert.Equal("bounces@example.org", job.Sender);
            Assert.Contains("with HTTP", text); // the Received field cleanup adds, as for SMTP mail
        }
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
        var (mta, _) = await StartAsync(azurite.ConnectionString, new Dictionary<string, string?> { ["Ingress:HealthPort"] = health.ToString() });
        await using var _1 = mta;
        var (exit, output) = await EndToEndTests.RunAsync(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", $"Authorization: Bearer {Token}",
            "-H", "Content-Type: application/json", "--data-binary", """{"envelope_sender":"b@example.org","recipients":[{"email":"a@localhost"}],"content":"Subject: x\r\n\r\nx\r\n"}""",
            $"http://127.0.0.1:{health}/api/inject/v1");
        Assert.Equal((0, "404"), (exit, output.Trim()));
        Assert.Empty(await AllJobsAsync(azurite.ConnectionString));
    }
}

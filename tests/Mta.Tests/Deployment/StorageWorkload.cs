using Azure.Data.Tables;
using Azure.Storage.Queues;
using MailKit.Net.Smtp;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;
using Mta.Mail;
using Mta.Mail.Administration;
using Mta.Mail.Queues;
using Mta.Mail.Tracking;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Deployment;

/// <summary>
/// Every part of the MTA doing the storage work it does in production, each through a storage recorder of its own
/// (one per identity), against one Azurite: the ingress (cleanup inline, and handing off to the cleanup stage), the
/// functions in their worker under the local functions host (whose queue listener is the Functions host's own),
/// and mtactl's queue administration as an operator runs it. The mail covers every path that touches storage:
/// small and spooled messages, a message for two next hops, held mail, body checks, deferred mail, a retry, a loop
/// refused at the ingress and one bounced by the cleanup stage, a poison message, an expired completion table, and
/// every operator command.
/// </summary>
public sealed class StorageWorkload
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>The requests each identity made, by identity name (ingress, functions, operators).</summary>
    public static async Task<IReadOnlyDictionary<string, IReadOnlyList<StorageRequest>>> RunAsync()
    {
        await using var azurite = await Azurite.StartAsync(); // the recorders proxy its ports as the development account
        await using var ingress = new StorageRecorder(azurite);
        await using var functions = new StorageRecorder(azurite);
        await using var operators = new StorageRecorder(azurite);
        await using var server = CountingSmtpServer.Start();
        var settings = await SettingsAsync(server.Port);
        // A completion table of a day long past: the delivery stage's sweep drops it.
        await new TableClient(azurite.ConnectionString, CompletionLog.TablePrefix + "20000101").CreateIfNotExistsAsync();
        {
            await using var front = await MtaSystem.StartAsync(ingress.ConnectionString,
                new Dictionary<string, string?>(settings) { ["Ingress:CleanupInline"] = "true" }, functions: false);
            await using var handOff = await MtaSystem.StartAsync(ingress.ConnectionString,
                new Dictionary<string, string?>(settings) { ["Ingress:CleanupInline"] = "false" }, functions: false);
            await using var workers = await MtaSystem.StartAsync(functions.ConnectionString, settings, ingress: false);
            await using var admin = Administration(operators.ConnectionString);
            await RunMailAsync(front.SmtpPort, handOff.SmtpPort, server, azurite, admin.GetRequiredService<QueueAdministration>(), functions);
        }
        return new Dictionary<string, IReadOnlyList<StorageRequest>>
        {
            ["ingress"] = ingress.Requests,
            ["functions"] = functions.Requests,
            ["operators"] = operators.Requests,
        };
    }

    private static async Task<Dictionary<string, string?>> SettingsAsync(int server)
    {
        var folder = TestEnvironment.TempFolder("roles");
        var closed = TestEnvironment.FreeTcpPort();
        await File.WriteAllTextAsync(Path.Combine(folder, "transport"),
            $"example.test smtp:[127.0.0.1]:{server}\nother.test smtp:[127.0.0.1]:{server}\nslow.test smtp:[127.0.0.1]:{closed}\n");
        await File.WriteAllTextAsync(Path.Combine(folder, "header_checks"), "/^Subject: hold me/ HOLD looks odd\n");
        // With body checks, cleanup reads a spooled body back from the spool.
        await File.WriteAllTextAsync(Path.Combine(folder, "body_checks"), "/^in none of these messages$/ REJECT\n");
        await File.WriteAllTextAsync(Path.Combine(folder, "shaping"), "[127.0.0.1] rate=100/s\n"); // shared rates: a table per site
        return new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = Path.Combine(folder, "transport"),
            ["Mta:HeaderChecksFile"] = Path.Combine(folder, "header_checks"),
            ["Mta:BodyChecksFile"] = Path.Combine(folder, "body_checks"),
            ["Mta:ShapingFile"] = Path.Combine(folder, "shaping"),
            // Deferred mail stays parked while the operator works on it.
            ["Mta:MinimalBackoffSeconds"] = "600",
            ["Mta:MaximalBackoffSeconds"] = "600",
            ["Mta:BackoffJitter"] = "0",
            // Three Received headers make a loop: cleanup refuses it at the ingress and bounces it in the cleanup stage.
            ["Mta:HopCountLimit"] = "3",
            // A failing message is retried at once and goes to its poison queue on the second failure.
            ["AzureFunctionsJobHost:extensions:queues:maxDequeueCount"] = "2",
            ["AzureFunctionsJobHost:extensions:queues:visibilityTimeout"] = "00:00:00",
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = "00:00:00.250",
            // The poison message's failures are expected: not worth a stack trace each.
            ["AzureFunctionsJobHost:logging:logLevel:Function.Bounce"] = "None",
            ["AzureFunctionsJobHost:logging:logLevel:Host.Results"] = "None",
        };
    }

    // mtactl builds its administration this way (cli/Mta.Cli/Services.cs), from the operator's storage connection.
    private static ServiceProvider Administration(string storage) => new ServiceCollection().AddLogging()
        .AddMailPipeline(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["AzureWebJobsStorage"] = storage }).Build())
        .AddSingleton<QueueAdministration>()
        .BuildServiceProvider();

    private static async Task RunMailAsync(int front, int handOff, CountingSmtpServer server, Azurite azurite, QueueAdministration admin,
        StorageRecorder functions)
    {
        var (held, retried, deleted) = await SendMailAsync(front, handOff, azurite);
        string[] arrive = ["a@example.test", "b@example.test", "c@other.test", "loop@example.test"]; // the last one: the loop's bounce
        await Until("delivered and bounced", () => Task.FromResult(arrive.All(r => server.Messages.Any(m => m.Recipients.Contains(r)))));
        await Until("deferred and held", async () => (await admin.ListAsync()).Count(e => e.State is "deferred" or "hold") == 3);
        await Until("poisoned", async () => (await admin.PoisonAsync(QueueNames.Bounce)).Count > 0);
        await OperateAsync(admin, server, functions, held, retried, deleted);
    }

    // The mail, and the queue ids of the held message and of the two that will be deferred.
    private static async Task<(string Held, string Retried, string Deleted)> SendMailAsync(int front, int handOff, Azurite azurite)
    {
        await Send(front, Message("small", false, "a@example.test"));
        await Send(front, Message("spooled", true, "b@example.test", "c@other.test"));
        var held = await Send(front, Message("hold me", false, "d@example.test"));
        var retried = await Send(front, Message("deferred small", false, "x@slow.test"));
        var deleted = await Send(front, Message("deferred spooled", true, "y@slow.test"));
        await Send(handOff, Loop());
        // Cleanup at the ingress refuses a loop after the message was spooled: the ingress deletes the blob.
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => Send(front, Loop()));
        Assert.Contains("Too many hops", refused.Message);
        // Not JSON: the bounce function fails on it until the trigger gives up and moves it to bounce-poison.
        var bounce = new QueueClient(azurite.ConnectionString, QueueNames.Bounce);
        await bounce.CreateIfNotExistsAsync();
        await bounce.SendMessageAsync("not a bounce job");
        return (held, retried, deleted);
    }

    // What an operator does with mtactl: every queue command once.
    private static async Task OperateAsync(QueueAdministration admin, CountingSmtpServer server, StorageRecorder functions,
        string held, string retried, string deleted)
    {
        await admin.RetryAsync(retried);
        // The retry function took the job (and parked it again): the trigger deleted its message from 'deferred'.
        await Until("retried", () => Task.FromResult(functions.Requests.Any(r => r is
            { Service: StorageService.Queue, Method: "DELETE", Segments: [QueueNames.Deferred, "messages", _] })));
        await admin.HoldAsync(deleted);
        await admin.DeleteAsync(deleted, null);
        await admin.ReleaseAsync(held);
        await Until("released", () => Task.FromResult(server.Messages.Any(m => m.Subject == "hold me")));
        await admin.RequeuePoisonAsync(QueueNames.Bounce);
        await admin.PurgePoisonAsync(QueueNames.Bounce);
    }

    private static async Task Until(string what, Func<Task<bool>> condition)
    {
        if (!await TestEnvironment.EventuallyAsync(condition, Timeout)) throw new TimeoutException($"not {what} after {Timeout}");
    }

    private static async Task<string> Send(int port, MimeMessage message)
    {
        var reply = await TestMail.SendAsync(port, message);
        return reply[(reply.LastIndexOf(' ') + 1)..]; // "250 2.0.0 Ok: queued as <queue id>"
    }

    private static MimeMessage Message(string subject, bool spooled, params string[] to)
    {
        var m = TestMail.Message("sender@example.test", to[0], subject, spooled
            ? subject + "\r\n" + string.Concat(Enumerable.Range(0, 1500).Select(i => $"line {i:D4} of a body that goes to the spool\r\n"))
            : subject);
        foreach (var more in to.Skip(1)) m.To.Add(MailboxAddress.Parse(more));
        return m;
    }

    // Spooled, with enough Received headers to count as a loop, from a sender who gets the bounce.
    private static MimeMessage Loop()
    {
        var m = Message("loop", true, "z@example.test");
        m.From.Clear();
        m.From.Add(MailboxAddress.Parse("loop@example.test"));
        for (var i = 0; i < 3; i++) m.Headers.Insert(0, new Header("Received", $"from hop{i}.test by hop{i + 1}.test; Mon, 1 Jan 2024 00:00:0{i} +0000"));
        return m;
    }
}

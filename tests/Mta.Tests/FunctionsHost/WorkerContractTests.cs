using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Azure.Storage.Queues;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mta.Functions.Host;
using Mta.Functions.Host.Configuration;
using Mta.Functions.Host.Invocation;
using Mta.Functions.Host.Protocol;
using Mta.Functions.Host.Rpc;
using Mta.Functions.Host.Triggers;
using Mta.Functions.Host.Worker;
using Mta.Mail.Contracts;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.FunctionsHost;

/// <summary>
/// The functions app as the image ships it (published ReadyToRun, as infra/docker/functions.Dockerfile does) under the
/// local host: launched, indexed and loaded over the Functions RPC protocol, invoked through each function's real
/// binding, and held to the host's contract — allow-list, environment overrides of host.json, functionTimeout, a
/// worker killed mid-invocation, a worker that cannot start.
/// </summary>
[RunsLong(95)] // the first to ask for the published functions app: its tests wait for the publish
public sealed class WorkerContractTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static async Task<(IHost Host, LogCapture Log)> StartHostAsync(string app, string storage, Dictionary<string, string?> settings)
    {
        var log = new LogCapture();
        var all = new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = storage,
            ["Mta:MetricsPort"] = "0",
            ["Mta:MyHostname"] = "mta.test",
            ["Mta:DeliverToInternalNetworks"] = "true", // the next hops here are on loopback
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Mta"] = "Information",
            ["AzureFunctionsJobHost:logging:logLevel:default"] = "Warning",
            ["AzureFunctionsJobHost:logging:logLevel:Azure.Core"] = "Error",
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = "00:00:00.500",
            ["FunctionsHost:ShutdownGracePeriod"] = "00:00:02",
        };
        foreach (var (key, value) in settings) all[key] = value;
        var host = LocalFunctionsHost.Create(app, [], all).ConfigureLogging(l => l.AddProvider(log)).Build();
        await host.StartAsync();
        return (host, log);
    }

    private static async Task StopAsync(IHost host)
    {
        await host.StopAsync(TimeSpan.FromSeconds(15));
        host.Dispose();
    }

    private static QueueClient Queue(string storage, string name) =>
        new(storage, name, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });

    private static async Task PutAsync(string storage, string queue, string text)
    {
        var client = Queue(storage, queue);
        await client.CreateIfNotExistsAsync();
        await client.SendMessageAsync(text);
    }

    private static string NewId(char stage) => stage + Guid.NewGuid().ToString("N")[..15].ToUpperInvariant();

    private static DeliveryJob Job(string id, string recipient, NextHop hop) => new()
    {
        MessageId = id, JobId = id + ".0", BlobName = id, Sender = "sender@remote.test", Recipients = [recipient], NextHop = hop,
        ArrivalTime = DateTimeOffset.UtcNow, Content = Encoding.ASCII.GetBytes($"Subject: {id}\r\n\r\nbody {id}\r\n"),
    };

    [SkippableFact]
    public async Task Every_function_loads_and_is_invoked_through_its_real_binding()
    {
        var app = await PublishedApps.FunctionsAppAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var data = TestEnvironment.TempFolder("data");
        // The Events function posts to a webhook: a listener in the test, named in a webhooks file with its secret.
        var hookPort = TestEnvironment.FreeTcpPort();
        using var hook = new System.Net.HttpListener();
        hook.Prefixes.Add($"http://127.0.0.1:{hookPort}/");
        hook.Start();
        var posted = ReceiveOnePostAsync(hook);
        var (hooks, secret) = (Path.Combine(data, "webhooks"), Path.Combine(data, "webhook.secret"));
        await File.WriteAllTextAsync(secret, "a-secret-of-twenty-octets");
        await File.WriteAllTextAsync(hooks, $"* http://127.0.0.1:{hookPort}/ {secret}\n");
        var (host, log) = await StartHostAsync(app, azurite.ConnectionString, new() { ["Mta:DataDirectory"] = data, ["Mta:WebhooksFile"] = hooks });
        try
        {
            var supervisor = host.Services.GetRequiredService<WorkerSupervisor>();
            Assert.Equal(["Bounce", "Cleanup", "Delivery", "Events", "Retry"], supervisor.Functions.Select(f => f.Name));
            // Cleanup, Delivery and Retry take a QueueMessage (ModelBindingData); Bounce takes the text.
            Assert.Equal(["Cleanup", "Delivery", "Retry"], supervisor.Functions.Where(f => f.DeferredBinding).Select(f => f.Name));

            var cleanup = NewId('C');
            await PutAsync(azurite.ConnectionString, QueueNames.Incoming, QueueJson.Serialize(new IncomingEnvelope
            {
                Id = cleanup, Sender = "sender@remote.test", Recipients = ["cleanup@localhost"], ClientAddress = "127.0.0.1", Helo = "client.test",
                ArrivalTime = DateTimeOffset.UtcNow, Size = 40, BlobName = cleanup, Content = Encoding.ASCII.GetBytes($"Subject: {cleanup}\r\n\r\nbody\r\n"),
            }));
            var local = new NextHop { Transport = Transport.Local };
            await PutAsync(azurite.ConnectionString, QueueNames.Delivery, DeliveryBatch.Join([QueueJson.Serialize(Job(NewId('D'), "delivery@localhost", local))]));
            await PutAsync(azurite.ConnectionString, QueueNames.Deferred, QueueJson.Serialize(Job(NewId('R'), "retry@localhost", local)));
            var bounce = NewId('B');
            await PutAsync(azurite.ConnectionString, QueueNames.Bounce, QueueJson.Serialize(new ReportJob
            {
                MessageId = bounce, BlobName = bounce, Sender = "bounce@localhost", ArrivalTime = DateTimeOffset.UtcNow,
                Recipients = [new ReportedRecipient("gone@remote.test", "550 5.1.1 no such user")], Content = Encoding.ASCII.GetBytes($"Subject: {bounce}\r\n\r\nbody\r\n"),
            }));

            foreach (var user in new[] { "cleanup", "delivery", "retry", "bounce" })
                Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
                    Directory.Exists(Path.Combine(data, "maildir", user, "new")) && Directory.GetFiles(Path.Combine(data, "maildir", user, "new")).Length == 1), Timeout),
                    $"nothing delivered to {user}:\n" + string.Join("\n", log.Lines));
            Assert.Contains("gone@remote.test", File.ReadAllText(Directory.GetFiles(Path.Combine(data, "maildir", "bounce", "new")).Single()));

            var eventId = NewId('E');
            await PutAsync(azurite.ConnectionString, QueueNames.Events, QueueJson.Serialize(new Mta.Mail.Events.MailEvent
            {
                Id = eventId, Type = "Delivery", Timestamp = DateTimeOffset.UtcNow, QueueId = eventId, Recipient = "r@remote.test", Sender = "s@remote.test",
            }));
            Assert.Contains(eventId, await posted.WaitAsync(Timeout));
        }
        finally { await StopAsync(host); }
    }

    private static async Task<string> ReceiveOnePostAsync(System.Net.HttpListener listener)
    {
        var context = await listener.GetContextAsync();
        using var reader = new StreamReader(context.Request.InputStream);
        var body = await reader.ReadToEndAsync();
        context.Response.StatusCode = 200;
        context.Response.Close();
        return body;
    }

    [SkippableFact]
    public async Task A_QueueMessage_parameter_without_model_binding_data_fails_as_it_would_in_Azure()
    {
        var app = await PublishedApps.FunctionsAppAsync();
        var connections = new WorkerConnections();
        var relay = new RpcLogRelay(NullLoggerFactory.Instance);
        await using var server = new RpcServer(connections, relay);
        await server.StartAsync(default);
        var settings = new Dictionary<string, string?> { ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true", ["Mta:MetricsPort"] = "0" };
        var handshake = new WorkerHandshake(WorkerDescription.Load(app), new FunctionsHostOptions(), settings, connections, NullLoggerFactory.Instance);
        var worker = await handshake.LaunchAsync(server.Port, WorkerSupervisor.Expected(FunctionMetadataFile.Load(app), new FunctionsHostOptions()), default);
        try
        {
            // The message text where the Cleanup function's QueueMessage expects ModelBindingData: the worker's converter refuses it.
            var text = InvocationRequests.ForQueueMessage(worker.Functions["Cleanup"], "inv-text", "{}", new Dictionary<string, object?>());
            var refused = (await worker.Channel.InvokeAsync(text)).Result;
            Assert.Equal(StatusResult.Types.Status.Failure, refused.Status);
            Assert.Contains("FunctionInputConverterException", refused.Exception.Type + refused.Exception.Message);

            // The same kind of text for Bounce, whose parameter is a string, reaches the function itself, which refuses it.
            var bounce = InvocationRequests.ForQueueMessage(worker.Functions["Bounce"], "inv-bounce", "not json", new Dictionary<string, object?>());
            var ran = (await worker.Channel.InvokeAsync(bounce)).Result;
            Assert.Equal(StatusResult.Types.Status.Failure, ran.Status);
            Assert.DoesNotContain("FunctionInputConverterException", ran.Exception.Type + ran.Exception.Message);
            Assert.Contains("InvalidQueueMessageException", ran.Exception.Type);
        }
        finally
        {
            worker.Channel.Terminate(TimeSpan.FromSeconds(2));
            await worker.Process.Exited.WaitAsync(TimeSpan.FromSeconds(10));
            worker.Process.Dispose();
        }
    }

    [SkippableFact]
    public async Task The_allow_list_admits_exactly_the_named_functions_and_environment_variables_override_host_json()
    {
        var app = await PublishedApps.FunctionsAppAsync();
        await using var azurite = await Azurite.LeaseAsync();
        var hostJson = File.ReadAllText(Path.Combine(app, "host.json"));
        Assert.Contains("\"maxDequeueCount\": 5", hostJson); // what the variable overrides
        // As a Deployment sets them, in the environment (MtaProcess writes Key:Sub as Key__Sub).
        await using var functions = MtaProcess.StartFunctions(new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = azurite.ConnectionString,
            ["Mta:MetricsPort"] = "0",
            ["AzureFunctionsJobHost:functions:0"] = "delivery",
            ["AzureFunctionsJobHost:extensions:queues:maxDequeueCount"] = "1",
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = "00:00:00.500",
            ["AzureFunctionsJobHost:logging:logLevel:Host.Worker"] = "Information",
        }, app);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(functions.Output.Contains("Worker process started and initialized")), Timeout),
            functions.Output);
        Assert.Contains("Delivery: queueTrigger (delivery)", functions.Output);
        foreach (var other in new[] { "Bounce", "Cleanup", "Retry" })
            Assert.DoesNotContain($"{other}: queueTrigger", functions.Output);

        // A bad job on each queue: the delivery one fails once and is poisoned at once (maxDequeueCount 1, where host.json
        // says 5, each retry 10 s apart); nobody listens on incoming, so its message stays.
        await PutAsync(azurite.ConnectionString, QueueNames.Incoming, "{}");
        await PutAsync(azurite.ConnectionString, QueueNames.Delivery, "{}");
        var poison = Queue(azurite.ConnectionString, QueueNames.Delivery + "-poison");
        Assert.True(await TestEnvironment.EventuallyAsync(async () => (await poison.ExistsAsync()).Value
            && (await poison.PeekMessagesAsync()).Value.Length == 1, TimeSpan.FromSeconds(15)), functions.Output);
        Assert.Single((await Queue(azurite.ConnectionString, QueueNames.Incoming).PeekMessagesAsync()).Value);
    }

    [SkippableFact]
    public async Task Function_timeout_cancels_the_invocation_in_the_worker_and_fails_it()
    {
        var app = await PublishedApps.FunctionsAppAsync();
        await using var azurite = await Azurite.LeaseAsync();
        // A next hop that accepts and then says nothing: the SMTP client would wait a minute for its greeting.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var held = new List<TcpClient>();
        _ = Task.Run(async () => { while (true) held.Add(await silent.AcceptTcpClientAsync()); });
        var (host, log) = await StartHostAsync(app, azurite.ConnectionString, new()
        {
            ["AzureFunctionsJobHost:functionTimeout"] = "00:00:02",
            ["Mta:SmtpTimeoutSeconds"] = "60",
            ["Mta:DataDirectory"] = TestEnvironment.TempFolder("data"),
        });
        try
        {
            var id = NewId('T');
            var started = Stopwatch.StartNew();
            await PutAsync(azurite.ConnectionString, QueueNames.Delivery, DeliveryBatch.Join([QueueJson.Serialize(Job(id, "u@example.test",
                new NextHop { Transport = Transport.Smtp, Host = "127.0.0.1", Port = ((IPEndPoint)silent.LocalEndpoint).Port }))]));
            Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
                log.Matching("of Delivery was cancelled; the worker answered", "functionTimeout 00:00:02 passed").Count > 0), TimeSpan.FromSeconds(20)),
                string.Join("\n", log.Lines));
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), "cancelled only after " + started.Elapsed);
        }
        finally
        {
            await StopAsync(host);
            foreach (var c in held) c.Dispose();
        }
    }

    [SkippableFact]
    public async Task A_worker_killed_mid_invocation_loses_nothing()
    {
        var app = await PublishedApps.FunctionsAppAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var sink = await SmtpSink.StartAsync();
        await using var proxy = new TcpProxy(sink.Port);
        var (host, log) = await StartHostAsync(app, azurite.ConnectionString, new()
        {
            ["AzureFunctionsJobHost:extensions:queues:visibilityTimeout"] = "00:00:01",
            ["Mta:DataDirectory"] = TestEnvironment.TempFolder("data"),
        });
        try
        {
            var supervisor = host.Services.GetRequiredService<WorkerSupervisor>();
            var pid = (await supervisor.ReadyAsync(default)).Process.Id;
            // SIGKILL the worker while it is inside the invocation: the next hop has just greeted it.
            var killed = proxy.AfterReply("220", () =>
            {
                Process.GetProcessById(pid).Kill();
                return Task.CompletedTask;
            });
            var id = NewId('K');
            await PutAsync(azurite.ConnectionString, QueueNames.Delivery, DeliveryBatch.Join([QueueJson.Serialize(Job(id, "u@example.test",
                new NextHop { Transport = Transport.Smtp, Host = "127.0.0.1", Port = proxy.Port }))]));
            await killed.WaitAsync(Timeout);

            // The invocation failed with the worker; a new worker takes the message once it is visible again.
            Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Any(d => d.Contains("body " + id))), Timeout),
                string.Join("\n", log.Lines));
            Assert.Single(log.Matching($"Worker process {pid} ended"));
            Assert.NotEqual(pid, supervisor.WorkerProcessId);
            Assert.Single(sink.Dumps(), d => d.Contains("body " + id));
            var delivery = Queue(azurite.ConnectionString, QueueNames.Delivery);
            Assert.True(await TestEnvironment.EventuallyAsync(async () => (await delivery.GetPropertiesAsync()).Value.ApproximateMessagesCount == 0, Timeout));
        }
        finally { await StopAsync(host); }
    }

    [SkippableTheory]
    [InlineData(25, true)] // the default grace: the invocation in flight finishes, its message is deleted
    [InlineData(1, false)] // a grace shorter than the invocation: cancelled, its message stays for the next replica
    public async Task Sigterm_lets_invocations_in_flight_finish_within_the_grace_period_then_terminates_the_worker(int grace, bool finishes)
    {
        var app = await PublishedApps.FunctionsAppAsync();
        await using var azurite = await Azurite.LeaseAsync();
        await using var slow = CountingSmtpServer.Start();
        slow.DelayPerMessage = TimeSpan.FromSeconds(4); // the 250 after the final dot takes this long
        await using var functions = MtaProcess.StartFunctions(new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = azurite.ConnectionString,
            ["Mta:MetricsPort"] = "0",
            ["Mta:DataDirectory"] = TestEnvironment.TempFolder("data"),
            ["Mta:DeliverToInternalNetworks"] = "true",
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = "00:00:00.500",
            ["FunctionsHost:ShutdownGracePeriod"] = $"00:00:{grace:D2}",
        }, app);
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(functions.ChildProcessIds().Count == 1), Timeout), functions.Output);
        var worker = functions.ChildProcessIds().Single();
        var id = NewId('S');
        await PutAsync(azurite.ConnectionString, QueueNames.Delivery, DeliveryBatch.Join([QueueJson.Serialize(Job(id, "u@example.test",
            new NextHop { Transport = Transport.Smtp, Host = "127.0.0.1", Port = slow.Port }))]));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(slow.PeakConnections > 0), Timeout), functions.Output);
        await Task.Delay(1000); // EHLO, MAIL, RCPT and DATA are through: the worker waits for the 250

        using (var kill = Process.Start("kill", ["-TERM", functions.Process.Id.ToString()])) await kill.WaitForExitAsync();
        Assert.Equal(0, await functions.ExitCodeAsync(TimeSpan.FromSeconds(grace + 20)));
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(worker)); // terminated with its host
        var left = (await Queue(azurite.ConnectionString, QueueNames.Delivery).GetPropertiesAsync()).Value.ApproximateMessagesCount;
        if (finishes)
        {
            Assert.Single(slow.Messages);
            Assert.Equal(0, left);
        }
        else
        {
            Assert.Contains("the host is stopping and its grace period is over", functions.Output);
            Assert.Equal(1, left); // not lost: it comes back for whoever takes the queue next
        }
    }

    /// <summary>A copy of the functions build whose functions.metadata says something else than the worker's own indexing.</summary>
    private static string AppWithMetadata(Func<string, string> edit)
    {
        var app = TestEnvironment.TempFolder("app");
        foreach (var file in Directory.GetFiles(TestEnvironment.FunctionsApp, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(app, Path.GetRelativePath(TestEnvironment.FunctionsApp, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }
        var metadata = Path.Combine(app, FunctionMetadataFile.FileName);
        var text = File.ReadAllText(metadata);
        Assert.NotEqual(text, edit(text));
        File.WriteAllText(metadata, edit(text));
        return app;
    }

    private static string AppWithWorker(string script, string name = "worker.sh")
    {
        var app = TestEnvironment.TempFolder("app");
        File.Copy(Path.Combine(TestEnvironment.FunctionsApp, "host.json"), Path.Combine(app, "host.json"));
        File.Copy(Path.Combine(TestEnvironment.FunctionsApp, FunctionMetadataFile.FileName), Path.Combine(app, FunctionMetadataFile.FileName));
        File.WriteAllText(Path.Combine(app, name), script);
        File.WriteAllText(Path.Combine(app, WorkerDescription.FileName),
            $$"""{ "description": { "language": "dotnet-isolated", "defaultExecutablePath": "/bin/sh", "defaultWorkerPath": "{{name}}" } }""");
        return app;
    }

    [Theory]
    [InlineData("exits", "the worker exited with code 3 before it connected")]
    [InlineData("hangs", "the worker did not finish starting within 00:00:01")]
    [InlineData("lacks a function", "function(s) Nope not found in the app (functions.metadata has Bounce, Cleanup, Delivery, Events, Retry)")]
    [InlineData("disagrees", "function Delivery: the worker's trigger (delivery, AzureWebJobsStorage, message, deferred binding True) differs from functions.metadata's (elsewhere,")]
    public async Task A_worker_that_cannot_start_is_reported_in_one_line_with_its_output_and_the_host_exits_non_zero(string how, string expected)
    {
        var (app, settings) = how switch
        {
            "exits" => (AppWithWorker("echo 'boom: no storage setting' >&2\nexit 3\n"), new Dictionary<string, string?>()),
            "hangs" => (AppWithWorker("echo 'starting slowly'\nexec sleep 30\n"), new() { ["FunctionsHost:WorkerStartupTimeout"] = "00:00:01" }),
            "disagrees" => (AppWithMetadata(m => m.Replace("\"queueName\": \"delivery\"", "\"queueName\": \"elsewhere\"")), new Dictionary<string, string?>()),
            _ => (TestEnvironment.FunctionsApp, new Dictionary<string, string?> { ["AzureFunctionsJobHost:functions:0"] = "Nope" }),
        };
        settings["AzureWebJobsStorage"] = "UseDevelopmentStorage=true";
        settings["Mta:MetricsPort"] = "0";
        await using var functions = MtaProcess.StartFunctions(settings, app);
        var code = await functions.ExitCodeAsync(Timeout);
        Assert.True(code == 1, $"exit code {code}:\n{functions.Output}");
        var line = Assert.Single(functions.Output.Split('\n'), l => l.StartsWith("mta-functions-host: ", StringComparison.Ordinal));
        Assert.Contains(expected, line);
        if (how == "exits") Assert.Contains("boom: no storage setting", functions.Output);
        if (how == "hangs") Assert.Contains("starting slowly", functions.Output);
    }
}

using System.Reflection;
using System.Text.Json;
using Azure.Storage.Queues;
using Microsoft.Azure.WebJobs;
using Microsoft.Azure.WebJobs.Host;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Mta.Mail.Queues;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// The local host must run what the Functions host would run: exactly the functions, queues and
/// connections the Worker SDK wrote into functions.metadata, with host.json's queue settings.
/// </summary>
public sealed class LocalHostBindingTests
{
    /// <summary>functions.metadata as the Worker SDK generated it in the functions project's own output.</summary>
    private static JsonElement[] GeneratedMetadata()
    {
        var config = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name; // bin/<Config>/net10.0
        var path = Path.Combine(TestEnvironment.RepoRoot, "functions", "bin", config, "net10.0", "functions.metadata");
        Assert.True(File.Exists(path), path + " missing");
        return JsonDocument.Parse(File.ReadAllText(path)).RootElement.EnumerateArray().ToArray();
    }

    [Fact]
    public async Task Binds_exactly_the_functions_queues_and_connections_in_functions_metadata()
    {
        var expected = GeneratedMetadata().Select(f =>
        {
            var trigger = f.GetProperty("bindings").EnumerateArray().Single(b => b.GetProperty("type").GetString() == "queueTrigger");
            return $"{f.GetProperty("name").GetString()}|{trigger.GetProperty("queueName").GetString()}|{trigger.GetProperty("connection").GetString()}";
        }).Order().ToList();
        Assert.Contains("Cleanup|incoming|AzureWebJobsStorage", expected);
        Assert.Contains("Delivery|delivery|AzureWebJobsStorage", expected);
        Assert.Contains("Retry|deferred|AzureWebJobsStorage", expected);

        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, ingress: false);

        // What the WebJobs SDK indexed: the types its type locator hands it, read back through their attributes.
        var types = mta.Functions.Services.GetRequiredService<ITypeLocator>().GetTypes();
        var bound = types.SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(m =>
            {
                var name = m.GetCustomAttribute<FunctionNameAttribute>()!.Name;
                var trigger = m.GetParameters().Select(p => p.GetCustomAttribute<QueueTriggerAttribute>()).Single(a => a is not null)!;
                return $"{name}|{trigger.QueueName}|{trigger.Connection}";
            }).Order().ToList();
        Assert.Equal(expected, bound);

        // And the running host listens on those queues: a message on each is consumed.
        var queues = new QueueServiceClient(azurite.ConnectionString, new QueueClientOptions { MessageEncoding = MailQueues.Encoding });
        foreach (var queue in new[] { QueueNames.Incoming, QueueNames.Delivery, QueueNames.Deferred })
        {
            var client = queues.GetQueueClient(queue);
            await client.CreateIfNotExistsAsync();
            await client.SendMessageAsync("{}"); // invalid on purpose: consumed, fails, retried
            Assert.True(await TestEnvironment.EventuallyAsync(async () =>
                (await client.PeekMessagesAsync()).Value.Length == 0, TimeSpan.FromSeconds(20)), $"nothing consumed {queue}");
        }
    }

    [Fact]
    public async Task Queue_listener_options_come_from_host_json()
    {
        var hostJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "host.json")))
            .RootElement.GetProperty("extensions").GetProperty("queues");
        await using var azurite = await Azurite.LeaseAsync();
        // No overrides this time: host.json exactly as shipped.
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["AzureFunctionsJobHost:extensions:queues:maxPollingInterval"] = hostJson.GetProperty("maxPollingInterval").GetString(),
        }, ingress: false);

        var options = mta.Functions.Services.GetRequiredService<IOptions<Microsoft.Azure.WebJobs.Host.QueuesOptions>>().Value;
        Assert.Equal(hostJson.GetProperty("batchSize").GetInt32(), options.BatchSize);
        Assert.Equal(hostJson.GetProperty("newBatchThreshold").GetInt32(), options.NewBatchThreshold);
        Assert.Equal(hostJson.GetProperty("maxDequeueCount").GetInt32(), options.MaxDequeueCount);
        Assert.Equal(TimeSpan.Parse(hostJson.GetProperty("visibilityTimeout").GetString()!), options.VisibilityTimeout);
        Assert.Equal(TimeSpan.Parse(hostJson.GetProperty("maxPollingInterval").GetString()!), options.MaxPollingInterval);
        // One encoding, everywhere: the trigger decodes what MailQueues encodes.
        Assert.Equal(hostJson.GetProperty("messageEncoding").GetString(), options.MessageEncoding.ToString(), ignoreCase: true);
        Assert.Equal(MailQueues.Encoding, options.MessageEncoding);
    }
}

using Microsoft.Azure.WebJobs;
using Microsoft.Extensions.Configuration;
using Mta.Functions.Host.Configuration;
using Mta.Functions.Host.Invocation;
using Mta.Functions.Host.Protocol;
using Mta.Functions.Host.Triggers;
using Mta.Functions.Host.Worker;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.FunctionsHost;

/// <summary>
/// The local host's decisions, without a worker: how it launches one, how it layers configuration, how it reads a
/// function's trigger and how it builds an invocation. The processes themselves are in <see cref="WorkerContractTests"/>.
/// </summary>
[Collection(RunsAlone.Name)] // sets environment variables the whole process sees
public sealed class HostProtocolTests
{
    private static WorkerDescription Description() => new("/app", "dotnet", "/app/Mta.Functions.dll", [], []);

    [Fact]
    public void The_worker_gets_the_switches_worker_2x_reads_and_the_legacy_ones_the_host_still_passes()
    {
        var args = WorkerLaunch.Arguments(Description(), 41234, "W1", "R1");
        Assert.Equal("/app/Mta.Functions.dll", args[0]);
        string After(string flag) => args[args.ToList().IndexOf(flag) + 1];
        Assert.Equal("http://127.0.0.1:41234/", After("--functions-uri"));
        Assert.Equal("W1", After("--functions-worker-id"));
        Assert.Equal("R1", After("--functions-request-id"));
        Assert.Equal("2147483647", After("--functions-grpc-max-message-length")); // without it the first message fails
        Assert.Equal("41234", After("--port"));
        Assert.Equal("W1", After("--workerId"));
    }

    [Fact]
    public void The_worker_environment_carries_the_app_settings_and_the_folders_it_resolves_against()
    {
        var env = WorkerLaunch.Environment(Description(), new Dictionary<string, string?> { ["Mta:LocalDomains:0"] = "example.org" });
        Assert.Equal("example.org", env["Mta__LocalDomains__0"]);
        Assert.Equal("/app", env["FUNCTIONS_APPLICATION_DIRECTORY"]);
        Assert.Equal("/app", env["FUNCTIONS_WORKER_DIRECTORY"]);
        Assert.Equal("dotnet-isolated", env["FUNCTIONS_WORKER_RUNTIME"]);
    }

    [Fact]
    public void Host_json_is_bound_under_AzureFunctionsJobHost_and_an_environment_variable_overrides_it()
    {
        var app = TestEnvironment.TempFolder("app");
        File.WriteAllText(Path.Combine(app, "host.json"), """{ "version": "2.0", "functionTimeout": "00:01:00", "extensions": { "queues": { "batchSize": 16, "maxDequeueCount": 5 } } }""");
        File.WriteAllText(Path.Combine(app, "local.settings.json"),
            """{ "Values": { "Mta__MyHostname": "from-local-settings", "Mta__TestOnlyOverridden": "from-local-settings" } }""");
        var variable = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount";
        Environment.SetEnvironmentVariable(variable, "2");
        Environment.SetEnvironmentVariable("Mta__TestOnlyOverridden", "from-environment");
        try
        {
            var config = new ConfigurationBuilder()
                .AddFunctionsHostSources(app, new Dictionary<string, string?> { ["Mta:DataDirectory"] = "/data" }, [], out var appSettings).Build();
            Assert.Equal("16", config["AzureFunctionsJobHost:extensions:queues:batchSize"]);
            Assert.Equal("2", config["AzureFunctionsJobHost:extensions:queues:maxDequeueCount"]);
            Assert.Equal("AzureFunctionsJobHost", config["AzureWebJobsConfigurationSection"]); // where the WebJobs SDK looks
            Assert.Null(config["AzureWebJobs:extensions:queues:batchSize"]);
            Assert.Equal("from-local-settings", config["Mta:MyHostname"]);
            Assert.Equal("from-local-settings", appSettings["Mta:MyHostname"]); // and the worker gets it
            Assert.Equal("/data", appSettings["Mta:DataDirectory"]);
            // As under func start, the environment wins over local.settings.json, for the host and for the worker.
            Assert.Equal("from-environment", config["Mta:TestOnlyOverridden"]);
            Assert.False(appSettings.ContainsKey("Mta:TestOnlyOverridden"));
            Assert.Equal(TimeSpan.FromMinutes(1), FunctionsHostOptions.From(config).FunctionTimeout);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
            Environment.SetEnvironmentVariable("Mta__TestOnlyOverridden", null);
        }
    }

    [Theory]
    [InlineData(null, 1800.0)]
    [InlineData("00:00:02", 2.0)]
    [InlineData("-1", null)]
    public void Function_timeout_reads_as_in_host_json(string? value, double? seconds) =>
        Assert.Equal(seconds is null ? null : TimeSpan.FromSeconds(seconds.Value), FunctionsHostOptions.ParseTimeout(value));

    [Fact]
    public void A_function_timeout_that_is_not_a_time_span_is_an_error_naming_it() =>
        Assert.Contains("functionTimeout 'soon'", Assert.Throws<InvalidDataException>(() => FunctionsHostOptions.ParseTimeout("soon")).Message);

    [Fact]
    public void The_allow_list_is_case_insensitive_and_empty_admits_all()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection([new("AzureFunctionsJobHost:functions:0", "delivery")]).Build();
        var options = FunctionsHostOptions.From(config);
        Assert.True(options.Admits("Delivery"));
        Assert.False(options.Admits("Retry"));
        Assert.True(new FunctionsHostOptions().Admits("Retry"));
    }

    private static RpcFunctionMetadata Metadata(string name, string binding) =>
        new() { Name = name, FunctionId = "id-" + name, RawBindings = { binding } };

    [Fact]
    public void A_trigger_marked_for_deferred_binding_goes_as_model_binding_data_and_a_plain_one_as_text()
    {
        var deferred = QueueFunction.From(Metadata("Cleanup", """{"name":"message","direction":"In","type":"queueTrigger","queueName":"incoming","connection":"AzureWebJobsStorage","properties":{"supportsDeferredBinding":"True"}}"""));
        Assert.True(deferred.DeferredBinding);
        Assert.Equal(("incoming", "AzureWebJobsStorage", "message"), (deferred.QueueName, deferred.Connection, deferred.ParameterName));
        var plain = QueueFunction.From(Metadata("Bounce", """{"name":"msg","direction":"In","type":"queueTrigger","dataType":"String","queueName":"bounce","properties":{}}"""));
        Assert.False(plain.DeferredBinding);
        Assert.Equal(QueueFunction.DefaultConnection, plain.Connection);
    }

    [Fact]
    public void A_function_with_another_trigger_is_refused_rather_than_silently_not_run() =>
        Assert.Contains("httpTrigger", Assert.Throws<NotSupportedException>(() => QueueFunction.From(
            Metadata("Web", """{"name":"req","direction":"In","type":"httpTrigger","methods":["get"]}"""))).Message);

    [Fact]
    public void An_invocation_carries_the_extension_binding_data_the_trigger_metadata_and_a_trace_context()
    {
        var function = QueueFunction.From(Metadata("Delivery", """{"name":"message","type":"queueTrigger","queueName":"delivery","properties":{"supportsDeferredBinding":"True"}}"""));
        var content = BinaryData.FromString("""{"MessageId":"m1","MessageText":"{}","DequeueCount":3}""");
        var binding = new ParameterBindingData("1.0", "AzureStorageQueues", content, "application/json");
        var inserted = new DateTimeOffset(2026, 12, 2, 8, 0, 0, TimeSpan.Zero);
        var request = InvocationRequests.ForQueueMessage(function, "inv-1", binding, new Dictionary<string, object?>
        {
            ["QueueTrigger"] = "{}", ["Id"] = "m1", ["DequeueCount"] = 3L, ["InsertionTime"] = inserted, ["sys"] = new object(),
        });
        Assert.Equal(("inv-1", "id-Delivery"), (request.InvocationId, request.FunctionId));
        Assert.NotNull(request.TraceContext);
        var input = Assert.Single(request.InputData);
        Assert.Equal("message", input.Name);
        Assert.Equal(("1.0", "AzureStorageQueues", "application/json"), (input.Data.ModelBindingData.Version, input.Data.ModelBindingData.Source, input.Data.ModelBindingData.ContentType));
        Assert.Equal(content.ToString(), input.Data.ModelBindingData.Content.ToStringUtf8());
        Assert.Equal("m1", request.TriggerMetadata["Id"].String);
        Assert.Equal("3", request.TriggerMetadata["DequeueCount"].Json);
        Assert.Equal("\"2026-12-02T08:00:00+00:00\"", request.TriggerMetadata["InsertionTime"].Json);
        Assert.False(request.TriggerMetadata.ContainsKey("sys")); // only the queue trigger's contract
        Assert.Equal("text", InvocationRequests.TriggerValue("text").String);
    }
}

using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mta.Ingress.Injection;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>
/// The committed OpenAPI document is valid OpenAPI 3.1 (checked by @seriousme/openapi-schema-validator, from npm) and
/// describes the request the endpoint reads, field for field.
/// </summary>
public sealed class InjectionOpenApiTests
{
    public static TheoryData<string> Types => new()
    {
        nameof(InjectionRequest), nameof(InjectionRecipient), nameof(InjectionParts), nameof(InjectionMailbox), nameof(InjectionAttachment), nameof(InjectionDsn),
    };

    [Theory]
    [MemberData(nameof(Types))]
    public void Each_request_type_has_a_schema_with_exactly_its_json_fields(string type)
    {
        using var document = JsonDocument.Parse(InjectionEndpoint.OpenApi);
        var schema = document.RootElement.GetProperty("components").GetProperty("schemas").GetProperty(type);
        var documented = schema.GetProperty("properties").EnumerateObject().Select(p => p.Name).Order();
        var read = typeof(InjectionRequest).Assembly.GetType($"Mta.Ingress.Injection.{type}")!.GetProperties()
            .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name).OfType<string>().Order();
        Assert.Equal(read, documented);
    }

    [Fact]
    public void The_served_document_is_the_committed_file()
    {
        var committed = File.ReadAllBytes(Path.Combine(Peers.TestEnvironment.RepoRoot, "docs", "api", "inject-v1.openapi.json"));
        Assert.Equal(committed, InjectionEndpoint.OpenApi);
    }

    [SkippableFact]
    public async Task The_document_is_valid_openapi_3_1()
    {
        var node = Peers.TestEnvironment.RequireTool("node");
        var validator = Path.Combine(Peers.TestEnvironment.RepoRoot, "node_modules", "@seriousme", "openapi-schema-validator", "bin", "validate-api-cli.js");
        var (exit, output) = await Integration.EndToEndTests.RunAsync(node, validator, Path.Combine(Peers.TestEnvironment.RepoRoot, "docs", "api", "inject-v1.openapi.json"));
        Assert.True(exit == 0, output);
        Assert.True(JsonDocument.Parse(output).RootElement.GetProperty("valid").GetBoolean(), output);
    }
}

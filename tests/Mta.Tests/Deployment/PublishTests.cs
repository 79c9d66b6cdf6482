using System.Text.RegularExpressions;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Deployment;

/// <summary>
/// The Dockerfiles cannot be built here (no Docker engine), so the steps they rely on are run
/// as written: their own `dotnet publish` command, and the files their entrypoint needs.
/// </summary>
// The ReadyToRun publishes are PublishedApps', made once for every test that runs what ships: these tests check what they hold.
public sealed class PublishTests
{
    /// <summary>Runs every <c>RUN dotnet publish</c> of a Dockerfile as written; returns each output folder by its image path.</summary>
    private static Task<IReadOnlyDictionary<string, string>> PublishAllAsInDockerfileAsync(string dockerfile) =>
        PublishedApps.AsInDockerfileAsync(dockerfile);

    private static async Task<string> PublishAsInDockerfileAsync(string dockerfile)
        => (await PublishAllAsInDockerfileAsync(dockerfile)).Values.First();

    [Fact]
    public async Task Ingress_image_gets_its_entrypoint()
    {
        var output = await PublishAsInDockerfileAsync("ingress.Dockerfile");
        var dockerfile = await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "infra", "docker", "ingress.Dockerfile"));
        var entry = Regex.Match(dockerfile, @"ENTRYPOINT \[""dotnet"", ""([^""]+)""\]").Groups[1].Value;
        Assert.True(File.Exists(Path.Combine(output, entry)), $"{entry} missing from the publish output");
        Assert.True(File.Exists(Path.Combine(output, "Mta.Ingress.runtimeconfig.json")));
        Assert.Matches(@"(?m)^USER 10001", dockerfile);
    }

    [Fact]
    public async Task Functions_image_gets_what_the_functions_host_loads()
    {
        var outputs = await PublishAllAsInDockerfileAsync("functions.Dockerfile");
        var output = outputs["/home/site/wwwroot"];
        Assert.True(File.Exists(Path.Combine(outputs["/opt/mtactl"], "mtactl.dll")), "mtactl missing from the functions image");
        foreach (var file in new[] { "host.json", "functions.metadata", "worker.config.json", "Mta.Functions.dll", "extensions.json" })
            Assert.True(File.Exists(Path.Combine(output, file)) || File.Exists(Path.Combine(output, ".azurefunctions", file)), $"{file} missing from the publish output");
        // The image's host loads the Storage Queues extension that extensions.json names, from where it says.
        using var extensions = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "extensions.json")));
        var queues = Assert.Single(extensions.RootElement.GetProperty("extensions").EnumerateArray(), e => e.GetProperty("name").GetString() == "AzureStorageQueues");
        Assert.StartsWith("Microsoft.Azure.WebJobs.Extensions.Storage.AzureStorageQueuesWebJobsStartup, Microsoft.Azure.WebJobs.Extensions.Storage.Queues,", queues.GetProperty("typeName").GetString());
        Assert.True(File.Exists(Path.Combine(output, queues.GetProperty("hintPath").GetString()!)), "the Storage Queues extension named in extensions.json is missing");
        using var worker = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "worker.config.json")));
        Assert.True(File.Exists(Path.Combine(output, worker.RootElement.GetProperty("description").GetProperty("defaultWorkerPath").GetString()!)));
        Assert.Contains("\"Retry\"", await File.ReadAllTextAsync(Path.Combine(output, "functions.metadata")));
        Assert.False(File.Exists(Path.Combine(output, "local.settings.json")), "local settings must not ship in the image");
        var dockerfile = await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "infra", "docker", "functions.Dockerfile"));
        Assert.Contains("FROM mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0", dockerfile);
        Assert.Matches(@"(?m)^USER 10001", dockerfile);
    }

    [Fact]
    public async Task Mtactl_packs_as_a_dotnet_tool()
    {
        var output = TestEnvironment.TempFolder("pack");
        var (exit, log) = await Integration.EndToEndTests.RunAsync(TimeSpan.FromMinutes(5), "dotnet", "pack", Path.Combine(TestEnvironment.RepoRoot, "cli", "Mta.Cli", "Mta.Cli.csproj"),
            "-c", "Release", "-o", output, "--nologo", "-v", "quiet");
        Assert.True(exit == 0, log);
        var package = Assert.Single(Directory.GetFiles(output, "Mta.Cli.*.nupkg"));
        using var zip = System.IO.Compression.ZipFile.OpenRead(package);
        Assert.Contains(zip.Entries, e => e.FullName == "tools/net10.0/any/mtactl.dll");
        Assert.Contains(zip.Entries, e => e.FullName == "tools/net10.0/any/DotnetToolSettings.xml");
    }
}

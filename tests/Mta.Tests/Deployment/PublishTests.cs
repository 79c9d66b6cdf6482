using System.Text.RegularExpressions;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Deployment;

/// <summary>
/// The Dockerfiles cannot be built here (no Docker engine), so the steps they rely on are run
/// as written: their own `dotnet publish` command, and the files their entrypoint needs.
/// </summary>
public sealed class PublishTests
{
    /// <summary>Runs every <c>RUN dotnet publish</c> of a Dockerfile as written; returns each output folder by its image path.</summary>
    private static async Task<Dictionary<string, string>> PublishAllAsInDockerfileAsync(string dockerfile)
    {
        var text = await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "infra", "docker", dockerfile));
        var runs = Regex.Matches(text, @"^RUN dotnet publish (\S+) -c (\S+) -o (\S+)\s*$", RegexOptions.Multiline);
        Assert.True(runs.Count > 0, $"{dockerfile} has no 'RUN dotnet publish PROJECT -c CONFIG -o DIR' line");
        var outputs = new Dictionary<string, string>();
        foreach (Match run in runs)
        {
            Assert.Matches(@"(?m)^COPY --from=build " + Regex.Escape(run.Groups[3].Value) + " ", text); // the runtime stage takes that output
            var output = TestEnvironment.TempFolder("publish");
            var (exit, log) = await Integration.EndToEndTests.RunAsync("dotnet", "publish", Path.Combine(TestEnvironment.RepoRoot, run.Groups[1].Value),
                "-c", run.Groups[2].Value, "-o", output, "--nologo", "-v", "quiet");
            Assert.True(exit == 0, log);
            outputs[run.Groups[3].Value] = output;
        }
        return outputs;
    }

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
        var (exit, log) = await Integration.EndToEndTests.RunAsync("dotnet", "pack", Path.Combine(TestEnvironment.RepoRoot, "cli", "Mta.Cli", "Mta.Cli.csproj"),
            "-c", "Release", "-o", output, "--nologo", "-v", "quiet");
        Assert.True(exit == 0, log);
        var package = Assert.Single(Directory.GetFiles(output, "Mta.Cli.*.nupkg"));
        using var zip = System.IO.Compression.ZipFile.OpenRead(package);
        Assert.Contains(zip.Entries, e => e.FullName == "tools/net10.0/any/mtactl.dll");
        Assert.Contains(zip.Entries, e => e.FullName == "tools/net10.0/any/DotnetToolSettings.xml");
    }
}

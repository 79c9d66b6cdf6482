using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Xunit;

namespace Mta.Tests.Peers;

/// <summary>
/// The programs as the images get them: each Dockerfile's <c>RUN dotnet publish</c> lines run as written (ReadyToRun,
/// linux-x64), once per test run and shared by every test that needs them.
/// </summary>
public static class PublishedApps
{
    private static readonly ConcurrentDictionary<string, Lazy<Task<IReadOnlyDictionary<string, string>>>> Published = new();

    // Publishes share projects (Mta.Mail) and their obj folders: one at a time.
    private static readonly SemaphoreSlim OneAtATime = new(1, 1);

    /// <summary>
    /// The functions app as <c>infra/docker/functions.Dockerfile</c> publishes it into <c>/home/site/wwwroot</c>. The
    /// ingress's publish follows in the background, while the parallel tests run, so the publish tests that run alone at
    /// the end only await it (half a minute less of the run spent on one core).
    /// </summary>
    public static async Task<string> FunctionsAppAsync()
    {
        var app = (await AsInDockerfileAsync("functions.Dockerfile"))["/home/site/wwwroot"];
        _ = AsInDockerfileAsync("ingress.Dockerfile"); // a failure surfaces in the test that awaits it
        return app;
    }

    /// <summary>Every publish output of <paramref name="dockerfile"/>, by the image path it is copied to.</summary>
    public static Task<IReadOnlyDictionary<string, string>> AsInDockerfileAsync(string dockerfile) =>
        Published.GetOrAdd(dockerfile, d => new(() => PublishAsync(d))).Value;

    private static async Task<IReadOnlyDictionary<string, string>> PublishAsync(string dockerfile)
    {
        var text = await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "infra", "docker", dockerfile));
        var runs = Regex.Matches(text, @"^RUN dotnet publish (\S+) -c (\S+) -o (\S+)\s*$", RegexOptions.Multiline);
        Assert.True(runs.Count > 0, $"{dockerfile} has no 'RUN dotnet publish PROJECT -c CONFIG -o DIR' line");
        var outputs = new Dictionary<string, string>();
        await OneAtATime.WaitAsync();
        try
        {
            foreach (Match run in runs) outputs[run.Groups[3].Value] = await PublishRunAsync(text, run);
        }
        finally { OneAtATime.Release(); }
        return outputs;
    }

    private static async Task<string> PublishRunAsync(string text, Match run)
    {
        Assert.Matches(@"(?m)^COPY --from=build " + Regex.Escape(run.Groups[3].Value) + " ", text); // the runtime stage takes that output
        var output = TestEnvironment.TempFolder("publish");
        // On a fresh machine the first publish also restores the linux-x64 runtime and ReadyToRun compiler packs.
        var (exit, log) = await Integration.EndToEndTests.RunAsync(TimeSpan.FromMinutes(10), "dotnet", "publish", Path.Combine(TestEnvironment.RepoRoot, run.Groups[1].Value),
            "-c", run.Groups[2].Value, "-o", output, "--nologo", "-v", "quiet");
        Assert.True(exit == 0, log);
        return output;
    }
}

using System.Text.Json;
using System.Text.RegularExpressions;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// After an end-to-end run, the stages' metrics carry the right names, labels and counts, and every metric the Grafana
/// dashboard queries is exported by the ingress or the functions process.
/// </summary>
[RunsLong(21)]
public sealed class PipelineMetricsTests
{
    private static readonly HttpClient Http = new();

    private static double Value(string scrape, string metric, params string[] labels)
    {
        var total = 0.0;
        foreach (Match m in Regex.Matches(scrape, $@"^{metric}\{{([^}}]*)\}} ([0-9.eE+-]+)", RegexOptions.Multiline))
            if (labels.All(l => m.Groups[1].Value.Split(',').Contains(l)))
                total += double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        return total;
    }

    [SkippableFact]
    public async Task Stage_metrics_count_what_happened_and_cover_the_dashboard()
    {
        await using var sink = await SmtpSink.StartAsync();
        var closed = TestEnvironment.FreeTcpPort();
        var health = TestEnvironment.FreeTcpPort();
        await using var azurite = await Azurite.LeaseAsync();
        var map = Path.Combine(TestEnvironment.TempFolder("transport"), "transport");
        await File.WriteAllTextAsync(map, $"example.test smtp:[127.0.0.1]:{sink.Port}\ndead.test smtp:[127.0.0.1]:{closed}\n");
        var settings = new Dictionary<string, string?>
        {
            ["Mta:TransportMapFile"] = map, ["Mta:MyHostname"] = "mta.test", ["Mta:DeliverToInternalNetworks"] = "true",
            // Long enough for a first attempt beside other tests, short enough that the test sees the mail expire.
            ["Mta:MinimalBackoffSeconds"] = "1", ["Mta:MaximalBackoffSeconds"] = "1", ["Mta:MaximalQueueLifetimeSeconds"] = "15", ["Mta:BackoffJitter"] = "0",
        };
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, settings, ingress: false);
        // Meters are a process's: the ingress runs as a process of its own (as in its pod), so no other test's ingress in
        // this test process counts into what it exports, and the test runs beside them.
        var smtpPort = TestEnvironment.FreeTcpPort();
        await using var ingressProcess = await MtaProcess.StartIngressAsync(smtpPort, new Dictionary<string, string?>(settings)
        {
            ["AzureWebJobsStorage"] = azurite.ConnectionString, ["Mta:DataDirectory"] = mta.DataDirectory, ["Ingress:HealthPort"] = health.ToString(),
        });

        await TestMail.SendAsync(smtpPort, TestMail.Message("sender@localhost", "ok@example.test", "fine"));
        await TestMail.SendAsync(smtpPort, TestMail.Message("sender@localhost", "x@dead.test", "doomed"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count == 1 && mta.Maildir("sender").Length == 1),
            TimeSpan.FromSeconds(60)), "not delivered and bounced:\n" + ingressProcess.Output + string.Join("\n", mta.Log.Lines));

        // The functions worker's metrics (its own process); the cleanup counts are the ingress's (below), where messages are
        // cleaned up before the 250.
        var functions = await Http.GetStringAsync($"http://127.0.0.1:{mta.MetricsPort}/metrics");
        Assert.Equal(1, Value(functions, "mta_delivery_recipients_total", "status=\"sent\"", "transport=\"smtp\"", "dsn_class=\"2.0\""));
        Assert.True(Value(functions, "mta_delivery_recipients_total", "status=\"deferred\"", "dsn_class=\"4.4\"") >= 1, functions);
        Assert.Equal(1, Value(functions, "mta_delivery_recipients_total", "status=\"expired\""));
        Assert.Equal(1, Value(functions, "mta_delivery_recipients_total", "status=\"sent\"", "transport=\"local\"")); // the bounce itself
        Assert.Equal(1, Value(functions, "mta_dsn_reports_total", "action=\"failed\""));
        Assert.Equal(2, Value(functions, "mta_delivery_latency_seconds_count"));
        Assert.Matches(@"(?m)^mta_queue_messages\{[^}]*queue=""incoming""", functions);

        // One refused command, so the ingress's refusal counter exists too.
        var (smtp, _) = await RawSmtpClient.ConnectAsync(smtpPort);
        await using (smtp)
        {
            await smtp.CommandAsync("EHLO client.test");
            Assert.StartsWith("502", await smtp.CommandAsync("BOGUS"));
        }

        // Every metric the dashboard asks Prometheus for is exported by one of the two processes.
        var ingress = await Http.GetStringAsync($"http://127.0.0.1:{health}/metrics");
        Assert.Equal(2, Value(ingress, "mta_cleanup_messages_total", "outcome=\"queued\""));
        var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "infra", "dashboards", "mta.json")));
        var queried = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!)
            .SelectMany(e => Regex.Matches(e, @"mta_[a-z_]+").Select(m => m.Value)).Distinct().ToList();
        Assert.True(queried.Count >= 10, string.Join(", ", queried));
        foreach (var metric in queried)
            Assert.True(Regex.IsMatch(functions + ingress, $@"(?m)^{metric}[{{ ]"), $"the dashboard queries {metric}, which nothing exports");
    }
}

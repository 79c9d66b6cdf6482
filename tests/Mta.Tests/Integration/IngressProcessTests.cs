using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>The ingress as a process, as an operator starts it (make run, the container).</summary>
public sealed class IngressProcessTests
{
    [SkippableFact]
    public async Task The_ingress_announces_its_listeners_in_smtp_terms_and_not_as_http()
    {
        var port = TestEnvironment.FreeTcpPort();
        await using var ingress = await MtaProcess.StartIngressAsync(port, new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true",
            ["Ingress:HealthPort"] = "0",
            ["Logging:LogLevel:Mta.Ingress"] = "Information",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information", // where Kestrel says "Now listening on"
        });
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(ingress.Output.Contains("smtpd: listening on")), TimeSpan.FromSeconds(20)),
            ingress.Output);
        Assert.Contains($"smtpd: listening on 127.0.0.1:{port} (MX, port 25's role)", ingress.Output);
        Assert.DoesNotContain("Now listening on", ingress.Output);
    }
}

using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// MTA-STS (RFC 8461) end to end: the TXT record from dnsmasq, the policy from an HTTPS server on loopback
/// whose certificate the MTA verifies, and delivery to a Postfix MX that must present a valid certificate.
/// </summary>
[RunsLong(25)]
public sealed class MtaStsTests
{
    /// <summary>An HTTPS server on a free loopback port with the certificate in <paramref name="folder"/> (web.pem, web.key), serving the policy path.</summary>
    private static async Task<(WebApplication App, int Port)> PolicyServerAsync(string folder, Delegate policy)
    {
        var port = TestEnvironment.FreeTcpPort();
        var web = WebApplication.CreateSlimBuilder();
        web.Logging.ClearProviders();
        web.WebHost.ConfigureKestrel(k => k.ListenLocalhost(port, l => l.UseHttps(
            X509Certificate2.CreateFromPemFile(Path.Combine(folder, "web.pem"), Path.Combine(folder, "web.key")))));
        var app = web.Build();
        app.MapGet("/.well-known/mta-sts.txt", policy);
        await app.StartAsync();
        return (app, port);
    }

    [SkippableFact]
    public async Task An_enforced_policy_delivers_over_verified_tls_and_defers_when_no_mx_matches()
    {
        TestEnvironment.RequireTool("dnsmasq");
        var folder = TestEnvironment.TempFolder("mta-sts");
        var ca = TestCertificate.WriteAuthority(Path.Combine(folder, "ca.pem"));
        TestCertificate.WriteIssued(ca, Path.Combine(folder, "web.pem"), Path.Combine(folder, "web.key"), "mta-sts.sts.test", "mta-sts.sts-bad.test");
        TestCertificate.WriteIssued(ca, Path.Combine(folder, "mx.pem"), Path.Combine(folder, "mx.key"), "mx.sts.test", "mx.sts-bad.test");

        var policies = new Dictionary<string, string>
        {
            ["mta-sts.sts.test"] = "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n",
            ["mta-sts.sts-bad.test"] = "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n",
        };
        var fetched = 0;
        var (app, httpsPort) = await PolicyServerAsync(folder, (HttpContext context) =>
        {
            Interlocked.Increment(ref fetched);
            return policies.TryGetValue(context.Request.Host.Host, out var body) ? Results.Text(body, "text/plain") : Results.NotFound();
        });
        await using var _ = app;

        await using var postfix = await PostfixServer.StartAsync(null, Path.Combine(folder, "mx.pem"), Path.Combine(folder, "mx.key"));
        await using var dns = await Dnsmasq.StartAsync(
            "--mx-host=sts.test,mx.sts.test,10", "--host-record=mx.sts.test,127.0.0.1",
            "--txt-record=_mta-sts.sts.test,v=STSv1; id=20261128T1", "--host-record=mta-sts.sts.test,127.0.0.1",
            "--mx-host=sts-bad.test,mx.sts-bad.test,10", "--host-record=mx.sts-bad.test,127.0.0.1",
            "--txt-record=_mta-sts.sts-bad.test,v=STSv1; id=1", "--host-record=mta-sts.sts-bad.test,127.0.0.1");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:DnsServers:0"] = dns.Server,
            ["Mta:SmtpPort"] = postfix.Port.ToString(),
            ["Mta:TlsCaFile"] = ca.PemFile,
            ["Mta:MtaStsPort"] = httpsPort.ToString(),
        });

        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "a@sts.test", "enforced"));
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "b@sts-bad.test", "no matching mx"));

        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(
            postfix.Received("a@sts.test") && mta.Log.Matching("to=<b@sts-bad.test>", "status=deferred").Count > 0),
            TimeSpan.FromSeconds(60)), string.Join("\n", mta.Log.Lines));
        Assert.NotEmpty(mta.Log.Matching("MTA-STS: policy for sts.test: id=20261128T1, mode=enforce, mx=mx.sts.test"));
        Assert.NotEmpty(mta.Log.Matching($"Verified TLS connection established to mx.sts.test[127.0.0.1]:{postfix.Port}"));
        Assert.NotEmpty(mta.Log.Matching("to=<b@sts-bad.test>", "dsn=4.7.5", "MTA-STS policy of sts-bad.test allows none of its MX hosts"));
        Assert.False(postfix.Received("b@sts-bad.test"));
        Assert.Equal(2, fetched);

        // A second message to the same domain uses the cached policy (same TXT id): no new fetch.
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "c@sts.test", "cached"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(postfix.Received("c@sts.test")), TimeSpan.FromSeconds(30)));
        Assert.Equal(2, fetched);
    }

    [SkippableFact]
    public async Task A_policy_server_that_drips_its_body_is_given_up_at_one_deadline()
    {
        TestEnvironment.RequireTool("dnsmasq");
        var folder = TestEnvironment.TempFolder("mta-sts-drip");
        var ca = TestCertificate.WriteAuthority(Path.Combine(folder, "ca.pem"));
        TestCertificate.WriteIssued(ca, Path.Combine(folder, "web.pem"), Path.Combine(folder, "web.key"), "mta-sts.drip.test");
        // Headers at once, then one byte a second for a minute: no request timeout ends that by itself.
        var (app, httpsPort) = await PolicyServerAsync(folder, async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain";
            await context.Response.Body.FlushAsync();
            for (var i = 0; i < 60 && !context.RequestAborted.IsCancellationRequested; i++)
            {
                await context.Response.Body.WriteAsync("v"u8.ToArray());
                await context.Response.Body.FlushAsync();
                await Task.Delay(1000, context.RequestAborted).ContinueWith(_ => { });
            }
        });
        await using var _ = app;
        await using var sink = await SmtpSink.StartAsync();
        await using var dns = await Dnsmasq.StartAsync("--mx-host=drip.test,mx.drip.test,10", "--host-record=mx.drip.test,127.0.0.1",
            "--txt-record=_mta-sts.drip.test,v=STSv1; id=1", "--host-record=mta-sts.drip.test,127.0.0.1");
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Mta:DnsServers:0"] = dns.Server, ["Mta:SmtpPort"] = sink.Port.ToString(), ["Mta:TlsCaFile"] = ca.PemFile,
            ["Mta:MtaStsPort"] = httpsPort.ToString(), ["Mta:SmtpTimeoutSeconds"] = "5",
        });
        var sent = System.Diagnostics.Stopwatch.StartNew();
        await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("sender@localhost", "a@drip.test", "drip"));
        // No policy could be had: the message goes as without one (opportunistic TLS), after the 5 s deadline, not 60.
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(sink.Dumps().Count == 1), TimeSpan.FromSeconds(40)),
            string.Join("\n", mta.Log.Lines));
        Assert.True(sent.Elapsed < TimeSpan.FromSeconds(30), $"took {sent.Elapsed}");
        Assert.NotEmpty(mta.Log.Matching("MTA-STS: cannot fetch the policy of drip.test", "no whole policy within 5 s"));
    }
}

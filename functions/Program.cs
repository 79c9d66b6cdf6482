using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Mail;
using Mta.Mail.Configuration;
using Mta.Mail.Metrics;

var builder = FunctionsApplication.CreateBuilder(args);
// The check mtactl config check runs: an error stops the worker before it takes a message it could not handle, with the
// words config check prints (as the ingress does, no stack trace for an operator's mistake).
var configuration = MtaOptionsValidator.Check(builder.Configuration);
try
{
    ConfigFindings.ThrowOnErrors(configuration.Findings);
}
catch (InvalidOperationException e)
{
    Console.Error.WriteLine($"mta-functions: {e.Message}");
    return 1;
}
builder.Services.AddMailPipeline(builder.Configuration);
builder.Services.AddPipelineTelemetry(builder.Configuration);
var app = builder.Build();
ConfigFindings.LogWarnings(configuration.Findings, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Mta.Configuration"));
app.Run();
return 0;

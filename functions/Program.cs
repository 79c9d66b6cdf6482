using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mta.Mail;
using Mta.Mail.Configuration;
using Mta.Mail.Metrics;

var builder = FunctionsApplication.CreateBuilder(args);
// The check mtactl config check runs: an error stops the worker before it takes a message it could not handle.
var configuration = MtaOptionsValidator.Check(builder.Configuration);
ConfigFindings.ThrowOnErrors(configuration.Findings);
builder.Services.AddMailPipeline(builder.Configuration);
builder.Services.AddPipelineTelemetry(builder.Configuration);
var app = builder.Build();
ConfigFindings.LogWarnings(configuration.Findings, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Mta.Configuration"));
app.Run();

using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;
using Mta.Mail;
using Mta.Mail.Metrics;

var builder = FunctionsApplication.CreateBuilder(args);
builder.Services.AddMailPipeline(builder.Configuration);
builder.Services.AddPipelineTelemetry(builder.Configuration);
builder.Build().Run();

using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;
using Mta.Mail;

var builder = FunctionsApplication.CreateBuilder(args);
builder.Services.AddMailPipeline(builder.Configuration);
builder.Build().Run();

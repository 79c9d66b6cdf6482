using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Mta.Mail;
using Mta.Mail.Administration;
using Spectre.Console.Cli;
using System.ComponentModel;

namespace Mta.Cli;

/// <summary>Options every command takes.</summary>
public class CommonSettings : CommandSettings
{
    /// <summary>A JSON settings file (like the app's appsettings.json) read under the environment's settings.</summary>
    [CommandOption("--settings <FILE>")]
    [Description("JSON settings file; environment variables (AzureWebJobsStorage, Mta__*) win over it.")]
    public string? SettingsFile { get; init; }

    /// <summary>Machine-readable output.</summary>
    [CommandOption("--json")]
    [Description("Print JSON instead of a table.")]
    public bool Json { get; init; }
}

/// <summary>The configuration and services, built the way the MTA builds them: the same settings, the same storage.</summary>
public static class Services
{
    /// <summary>Configuration from the settings file and the environment.</summary>
    public static IConfiguration Configuration(CommonSettings settings)
    {
        var builder = new ConfigurationBuilder();
        if (settings.SettingsFile is not null)
        {
            if (!File.Exists(settings.SettingsFile)) throw new ArgumentException($"settings file {settings.SettingsFile} not found");
            builder.AddJsonFile(Path.GetFullPath(settings.SettingsFile));
        }
        return builder.AddEnvironmentVariables().Build();
    }

    /// <summary>The queue administration for the configured storage account.</summary>
    public static QueueAdministration Administration(CommonSettings settings)
    {
        var services = new ServiceCollection().AddLogging().AddMailPipeline(Configuration(settings));
        services.AddSingleton<QueueAdministration>();
        return services.BuildServiceProvider().GetRequiredService<QueueAdministration>();
    }
}

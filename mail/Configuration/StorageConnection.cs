using Microsoft.Extensions.Configuration;

namespace Mta.Mail.Configuration;

/// <summary>
/// Finds the storage connection string the same way the Functions host does: the
/// <c>AzureWebJobsStorage</c> setting (or <c>ConnectionStrings:AzureWebJobsStorage</c>).
/// </summary>
public static class StorageConnection
{
    /// <summary>The connection setting's name, shared by the ingress, the functions and the queue triggers.</summary>
    public const string SettingName = "AzureWebJobsStorage";

    /// <summary>Returns the connection string, or throws a message that says what to set.</summary>
    public static string Get(IConfiguration configuration)
    {
        var value = configuration[SettingName] ?? configuration.GetConnectionString(SettingName);
        if (string.IsNullOrWhiteSpace(value))
            throw new InvalidOperationException(
                $"No storage connection: set {SettingName} (for Azurite: UseDevelopmentStorage=true or a full connection string).");
        return value;
    }
}

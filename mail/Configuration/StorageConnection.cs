using Azure.Core;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Microsoft.Extensions.Configuration;

namespace Mta.Mail.Configuration;

/// <summary>
/// The storage account, found the way the Functions host finds it: either a connection string in
/// <c>AzureWebJobsStorage</c>, or an identity-based connection (<c>AzureWebJobsStorage__accountName</c>,
/// or <c>__blobServiceUri</c>, <c>__queueServiceUri</c> and <c>__tableServiceUri</c>, optionally <c>__clientId</c>) authenticated
/// with Azure AD — workload identity in a cluster, so no key or connection string exists anywhere.
/// </summary>
public sealed class StorageConnection
{
    /// <summary>The connection setting's name, shared by the ingress, the functions and the queue triggers.</summary>
    public const string SettingName = "AzureWebJobsStorage";

    private readonly string? _connectionString;
    private readonly Uri? _blobUri;
    private readonly Uri? _queueUri;
    private readonly Uri? _tableUri;
    private readonly TokenCredential? _credential;

    private StorageConnection(string? connectionString, Uri? blobUri, Uri? queueUri, Uri? tableUri, TokenCredential? credential)
    {
        _connectionString = connectionString;
        _blobUri = blobUri;
        _queueUri = queueUri;
        _tableUri = tableUri;
        _credential = credential;
    }

    /// <summary>True for an identity-based connection (no secret in configuration).</summary>
    public bool UsesIdentity => _credential is not null;

    /// <summary>The queue service endpoint of an identity-based connection.</summary>
    public Uri? QueueServiceUri => _queueUri;

    /// <summary>Reads the connection from configuration, or throws a message that says what to set.</summary>
    public static StorageConnection From(IConfiguration configuration)
    {
        var value = configuration[SettingName] ?? configuration.GetConnectionString(SettingName);
        if (!string.IsNullOrWhiteSpace(value))
            return new StorageConnection(value, null, null, null, null);

        var section = configuration.GetSection(SettingName);
        var account = section["accountName"];
        var blob = section["blobServiceUri"] ?? (account is null ? null : $"https://{account}.blob.core.windows.net");
        var queue = section["queueServiceUri"] ?? (account is null ? null : $"https://{account}.queue.core.windows.net");
        var table = section["tableServiceUri"] ?? (account is null ? null : $"https://{account}.table.core.windows.net");
        if (blob is null || queue is null || table is null)
            throw new InvalidOperationException(
                $"No storage connection: set {SettingName} (a connection string; for Azurite UseDevelopmentStorage=true) " +
                $"or {SettingName}__accountName (or __blobServiceUri, __queueServiceUri and __tableServiceUri) for an identity-based connection.");
        var clientId = section["clientId"];
        var credential = new DefaultAzureCredential(new DefaultAzureCredentialOptions
        {
            ManagedIdentityClientId = clientId,
            WorkloadIdentityClientId = clientId,
        });
        return new StorageConnection(null, new Uri(blob), new Uri(queue), new Uri(table), credential);
    }

    /// <summary>A queue service client for this account.</summary>
    public QueueServiceClient QueueService(QueueClientOptions options) => _connectionString is not null
        ? new QueueServiceClient(_connectionString, Tuned(options))
        : new QueueServiceClient(_queueUri!, _credential!, Tuned(options));

    /// <summary>A blob container client for this account.</summary>
    public BlobContainerClient Container(string name, BlobClientOptions? options = null) => _connectionString is not null
        ? new BlobContainerClient(_connectionString, name, Tuned(options ?? new()))
        : new BlobServiceClient(_blobUri!, _credential!, Tuned(options ?? new())).GetBlobContainerClient(name);

    /// <summary>A table service client for this account (completion records and spool reference counts).</summary>
    public TableServiceClient TableService(TableClientOptions? options = null) => _connectionString is not null
        ? new TableServiceClient(_connectionString, Tuned(options ?? new()))
        : new TableServiceClient(_tableUri!, _credential!, Tuned(options ?? new()));

    /// <summary>
    /// Our clients skip the SDK's per-request log events and tracing spans: nothing here exports traces, the stages log
    /// every failure that matters with the queue id, and under load the two were a few percent of the CPU per message
    /// (header formatting for an event source, an activity per request). They retry a failed request 3 times (about 6 s
    /// of backoff), not the storage SDK's 5 (about 25 s): every caller has its own retry above this one (an SMTP client
    /// sends again after <c>451</c>, a queue trigger runs the message again), and a long backoff only held SMTP sessions
    /// open while storage was down — 50 s before a client heard <c>451</c>.
    /// </summary>
    private static T Tuned<T>(T options) where T : Azure.Core.ClientOptions
    {
        options.Diagnostics.IsLoggingEnabled = false;
        options.Diagnostics.IsDistributedTracingEnabled = false;
        options.Retry.MaxRetries = 3;
        return options;
    }
}

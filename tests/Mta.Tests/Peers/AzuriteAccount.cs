using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace Mta.Tests.Peers;

/// <summary>
/// One test's storage: an account of the run's shared Azurite (see <see cref="Azurite.LeaseAsync"/>), emptied when the
/// test is done so the shared process does not hold every test's messages in memory; or, past the accounts, an Azurite
/// of its own.
/// </summary>
public sealed class AzuriteAccount : IAsyncDisposable
{
    private readonly Azurite _azurite;
    private readonly string? _connectionString;

    internal AzuriteAccount(Azurite azurite, string? connectionString)
    {
        _azurite = azurite;
        _connectionString = connectionString;
    }

    /// <summary>A full connection string for the account.</summary>
    public string ConnectionString => _connectionString ?? _azurite.ConnectionString;

    /// <summary>The account's name (in the connection string and every URL path).</summary>
    public string Account => _connectionString is null ? "devstoreaccount1" : System.Text.RegularExpressions.Regex.Match(_connectionString, "AccountName=([^;]+)").Groups[1].Value;

    /// <summary>Blob service port.</summary>
    public int BlobPort => _azurite.BlobPort;

    /// <summary>Queue service port.</summary>
    public int QueuePort => _azurite.QueuePort;

    /// <summary>Table service port.</summary>
    public int TablePort => _azurite.TablePort;

    /// <summary>What Azurite printed (for failure messages).</summary>
    public string Output => _azurite.Output;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_connectionString is null)
        {
            await _azurite.DisposeAsync();
            return;
        }
        try
        {
            await foreach (var q in new QueueServiceClient(_connectionString).GetQueuesAsync())
                await new QueueServiceClient(_connectionString).DeleteQueueAsync(q.Name);
            await foreach (var c in new BlobServiceClient(_connectionString).GetBlobContainersAsync())
                await new BlobServiceClient(_connectionString).DeleteBlobContainerAsync(c.Name);
            var tables = new TableServiceClient(_connectionString);
            await foreach (var t in tables.QueryAsync()) await tables.DeleteTableAsync(t.Name);
        }
        catch (Exception) { /* the account is never leased again: emptying it only frees memory */ }
    }
}

using Microsoft.Extensions.Configuration;
using Mta.Mail.Configuration;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class StorageConnectionTests
{
    private static StorageConnection From(params (string Key, string Value)[] settings) => StorageConnection.From(
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build());

    [Fact]
    public void Connection_string_wins()
    {
        var c = From(("AzureWebJobsStorage", "UseDevelopmentStorage=true"), ("AzureWebJobsStorage:accountName", "ignored"));
        Assert.False(c.UsesIdentity);
    }

    [Fact]
    public void Account_name_means_an_identity_connection_to_the_public_endpoints()
    {
        // As the Functions host reads AzureWebJobsStorage__accountName from the environment.
        var c = From(("AzureWebJobsStorage:accountName", "mtastore"), ("AzureWebJobsStorage:clientId", "00000000-0000-0000-0000-000000000001"));
        Assert.True(c.UsesIdentity);
        Assert.Equal(new Uri("https://mtastore.queue.core.windows.net"), c.QueueServiceUri);
        Assert.Equal("https://mtastore.queue.core.windows.net/incoming", c.QueueService(new()).GetQueueClient("incoming").Uri.ToString());
        Assert.Equal("https://mtastore.blob.core.windows.net/spool", c.Container("spool").Uri.ToString());
        Assert.Equal("https://mtastore.table.core.windows.net/", c.TableService().Uri.ToString());
    }

    [Fact]
    public void Nothing_configured_says_what_to_set()
    {
        var e = Assert.Throws<InvalidOperationException>(() => From());
        Assert.Contains("AzureWebJobsStorage__accountName", e.Message);
    }
}

using Mta.Tests.Peers;
using YamlDotNet.Serialization;

namespace Mta.Tests.Deployment;

/// <summary>
/// Storage requests of the parts that cannot run here, from their sources: KEDA's azure-queue scaler (Go, in KEDA's
/// operator) and what the real Azure Functions host does beyond the queue listener the local host shares with it.
/// </summary>
public static class UnrecordedStorageUse
{
    /// <summary>
    /// For every azure-queue trigger in keda/: Get Queue Metadata (the approximate count) and Peek Messages (up to 32,
    /// to count the visible ones), as kedacore/keda pkg/scalers/azure/azure_queue.go does (GetProperties, then
    /// getVisibleCount with Peek).
    /// </summary>
    public static IReadOnlyList<StorageRequest> KedaScaler()
    {
        var yaml = File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "keda", "scaledobjects.yaml"));
        var deserializer = new DeserializerBuilder().Build();
        var queues = yaml.Split("\n---\n").Where(d => d.Trim().Length > 0)
            .Select(d => new Node(deserializer.Deserialize<object>(d)))
            .SelectMany(so => so["spec"]["triggers"].Items)
            .Where(t => t["type"].Text == "azure-queue")
            .Select(t => t["metadata"]["queueName"].Text!)
            .Distinct().ToList();
        if (queues.Count == 0) throw new InvalidDataException("keda/scaledobjects.yaml has no azure-queue trigger");
        return queues.SelectMany(q => new[]
        {
            Request(StorageService.Queue, "GET", $"{q}?comp=metadata"),
            Request(StorageService.Queue, "GET", $"{q}/messages?peekonly=true&numofmessages=32"),
        }).ToList();
    }

    /// <summary>
    /// The Functions host's own use of AzureWebJobsStorage (Azure/azure-functions-host): the primary host lock, a leased
    /// blob in azure-webjobs-hosts (created when missing, its metadata written), and the host keys in
    /// azure-webjobs-secrets (read, listed, written). The local functions host does neither.
    /// </summary>
    public static IReadOnlyList<StorageRequest> FunctionsHost() =>
    [
        Request(StorageService.Blob, "PUT", "azure-webjobs-hosts?restype=container"),
        Request(StorageService.Blob, "PUT", "azure-webjobs-hosts/locks/mta/host"),
        Request(StorageService.Blob, "PUT", "azure-webjobs-hosts/locks/mta/host?comp=lease"),
        Request(StorageService.Blob, "PUT", "azure-webjobs-hosts/locks/mta/host?comp=metadata"),
        Request(StorageService.Blob, "PUT", "azure-webjobs-secrets?restype=container"),
        Request(StorageService.Blob, "GET", "azure-webjobs-secrets?restype=container&comp=list"),
        Request(StorageService.Blob, "GET", "azure-webjobs-secrets/mta/host.json"),
        Request(StorageService.Blob, "PUT", "azure-webjobs-secrets/mta/host.json"),
    ];

    private static StorageRequest Request(StorageService service, string method, string target)
        => StorageRequest.From(service, method, "/account/" + target, null);
}

using System.Text.Json;
using Mta.Tests.Peers;

namespace Mta.Tests.Deployment;

/// <summary>One identity of infra/azure/storage-roles.json.</summary>
/// <param name="Name">ingress, functions, keda or operators.</param>
/// <param name="ManagedIdentity">The user-assigned managed identity assign-roles.sh creates for it, if any.</param>
/// <param name="ServiceAccount">namespace/name of the Kubernetes service account it is federated with, if any.</param>
/// <param name="TriggerAuthentication">namespace/name of the KEDA TriggerAuthentication that names it, if any.</param>
/// <param name="Roles">Its built-in storage data roles.</param>
public sealed record StorageIdentity(string Name, string? ManagedIdentity, string? ServiceAccount, string? TriggerAuthentication, IReadOnlyList<string> Roles);

/// <summary>infra/azure/storage-roles.json: the storage roles of every identity, as written down for the deployment.</summary>
public static class StorageRolesFile
{
    /// <summary>The file's path.</summary>
    public static string Path => System.IO.Path.Combine(TestEnvironment.RepoRoot, "infra", "azure", "storage-roles.json");

    /// <summary>Every identity in the file, by name.</summary>
    public static IReadOnlyDictionary<string, StorageIdentity> Read()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path));
        return doc.RootElement.GetProperty("identities").EnumerateArray().Select(i => new StorageIdentity(
                i.GetProperty("name").GetString()!,
                Optional(i, "managedIdentity"),
                Optional(i, "serviceAccount"),
                Optional(i, "triggerAuthentication"),
                i.GetProperty("roles").EnumerateObject().Select(r => r.Name).ToList()))
            .ToDictionary(i => i.Name);
    }

    private static string? Optional(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;
}

namespace Mta.Tests.Deployment;

/// <summary>
/// Azure's built-in data roles for blobs, queues and tables: their actions and data actions together, as the role
/// definitions list them (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage, the
/// JSON of each role; the ids are the roleDefinitions names). Storage authorizes a data request with either kind:
/// creating a queue needs the action <c>queues/write</c>, putting a message the data action <c>messages/add/action</c>.
/// Owner roles with wildcards are left out: nothing here should need them.
/// </summary>
public static class BuiltInStorageRoles
{
    private const string Blobs = "Microsoft.Storage/storageAccounts/blobServices";
    private const string Queues = "Microsoft.Storage/storageAccounts/queueServices";
    private const string Tables = "Microsoft.Storage/storageAccounts/tableServices";

    /// <summary>Role name → (role definition id, permissions).</summary>
    public static readonly IReadOnlyDictionary<string, (string Id, IReadOnlySet<string> Permissions)> All =
        new Dictionary<string, (string, IReadOnlySet<string>)>
        {
            ["Storage Blob Data Reader"] = ("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1", Set(
                $"{Blobs}/containers/read", $"{Blobs}/generateUserDelegationKey/action",
                $"{Blobs}/containers/blobs/read")),
            ["Storage Blob Data Contributor"] = ("ba92f5b4-2d11-453d-a403-e96b0029c9fe", Set(
                $"{Blobs}/containers/delete", $"{Blobs}/containers/read", $"{Blobs}/containers/write",
                $"{Blobs}/generateUserDelegationKey/action",
                $"{Blobs}/containers/blobs/delete", $"{Blobs}/containers/blobs/read", $"{Blobs}/containers/blobs/write",
                $"{Blobs}/containers/blobs/move/action", $"{Blobs}/containers/blobs/add/action")),
            ["Storage Queue Data Reader"] = ("19e7f393-937e-4f77-808e-94535e297925", Set(
                $"{Queues}/queues/read",
                $"{Queues}/queues/messages/read")),
            ["Storage Queue Data Message Sender"] = ("c6a89b2d-59bc-44d0-9896-0f6e12d7b80a", Set(
                $"{Queues}/queues/messages/add/action")),
            ["Storage Queue Data Message Processor"] = ("8a0f0c08-91a1-4084-bc3d-661d67233fed", Set(
                $"{Queues}/queues/messages/read", $"{Queues}/queues/messages/process/action")),
            ["Storage Queue Data Contributor"] = ("974c5e8b-45b9-4653-ba55-5f855dd0fb88", Set(
                $"{Queues}/queues/delete", $"{Queues}/queues/read", $"{Queues}/queues/write",
                $"{Queues}/queues/messages/delete", $"{Queues}/queues/messages/read", $"{Queues}/queues/messages/write",
                $"{Queues}/queues/messages/process/action")),
            ["Storage Table Data Reader"] = ("76199698-9eea-4c19-bc75-cec21354c6b6", Set(
                $"{Tables}/tables/read",
                $"{Tables}/tables/entities/read")),
            ["Storage Table Data Contributor"] = ("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", Set(
                $"{Tables}/tables/read", $"{Tables}/tables/write", $"{Tables}/tables/delete",
                $"{Tables}/tables/entities/read", $"{Tables}/tables/entities/write", $"{Tables}/tables/entities/delete",
                $"{Tables}/tables/entities/add/action", $"{Tables}/tables/entities/update/action")),
        };

    private static IReadOnlySet<string> Set(params string[] permissions) => permissions.ToHashSet(StringComparer.Ordinal);

    /// <summary>Everything the named roles allow together.</summary>
    public static IReadOnlySet<string> PermissionsOf(IEnumerable<string> roles)
        => roles.SelectMany(r => All.TryGetValue(r, out var role) ? role.Permissions
            : throw new ArgumentException($"'{r}' is not a built-in storage data role this test knows")).ToHashSet(StringComparer.Ordinal);
}

using Mta.Tests.Peers;

namespace Mta.Tests.Deployment;

/// <summary>
/// The Azure RBAC permissions (actions and data actions) a storage REST request needs when it is authorized with
/// Microsoft Entra ID: a list of needs, each met by any one of its permissions (Put Message is allowed by
/// <c>messages/add/action</c> or by <c>messages/write</c>), from "Permissions for calling data operations"
/// (https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory#permissions-for-calling-data-operations)
/// and the per-operation data actions of the ABAC references for blobs and queues
/// (https://learn.microsoft.com/azure/storage/blobs/storage-auth-abac-attributes,
/// https://learn.microsoft.com/azure/storage/queues/queues-auth-abac-attributes). A request this table does not know
/// throws: an operation nobody looked at must not pass as needing nothing.
/// </summary>
public static class StoragePermissions
{
    private const string Blobs = "Microsoft.Storage/storageAccounts/blobServices";
    private const string Queues = "Microsoft.Storage/storageAccounts/queueServices";
    private const string Tables = "Microsoft.Storage/storageAccounts/tableServices";

    /// <summary>What <paramref name="request"/> needs: every need, each by one of its permissions.</summary>
    public static IReadOnlyList<Need> Required(StorageRequest request) => request.Service switch
    {
        StorageService.Blob => [Blob(request)],
        StorageService.Queue => [Queue(request)],
        _ => Table(request),
    };

    private static string Blob(StorageRequest r) => (r.Segments.Count, r.Method, r["restype"], r["comp"]) switch
    {
        (1, "PUT", "container", null or "metadata" or "lease") => $"{Blobs}/containers/write", // Create Container, Set Metadata, Lease Container
        (1, "GET" or "HEAD", "container", null or "metadata") => $"{Blobs}/containers/read", // Get Container Properties
        (1, "GET", "container", "list") => $"{Blobs}/containers/blobs/read",                 // List Blobs
        (1, "DELETE", "container", null) => $"{Blobs}/containers/delete",
        (>= 2, "GET" or "HEAD", null, null or "metadata" or "blocklist") => $"{Blobs}/containers/blobs/read",
        // Put Blob, Put Block, Put Block List, Set Blob Metadata/Properties, Lease Blob all need write (a new block
        // blob may also be made with add/action, which every role that has write has too).
        (>= 2, "PUT", null, null or "block" or "blocklist" or "metadata" or "properties" or "lease") => $"{Blobs}/containers/blobs/write",
        (>= 2, "DELETE", null, null) => $"{Blobs}/containers/blobs/delete",
        _ => throw Unknown(r),
    };

    private static Need Queue(StorageRequest r) => (r.Segments.Count, r.Method, r["comp"]) switch
    {
        (1, "PUT", null or "metadata") => $"{Queues}/queues/write",           // Create Queue, Set Queue Metadata
        (1, "GET" or "HEAD", "metadata") => $"{Queues}/queues/read",          // Get Queue Metadata (the approximate count)
        (1, "DELETE", null) => $"{Queues}/queues/delete",
        (2, "POST", null) when r.Segments[1] == "messages"
            => new Need($"{Queues}/queues/messages/add/action", $"{Queues}/queues/messages/write"),           // Put Message
        (2, "GET", null) when r.Segments[1] == "messages" && r["peekonly"] == "true"
            => $"{Queues}/queues/messages/read",                                                          // Peek Messages
        (2, "GET", null) when r.Segments[1] == "messages" => $"{Queues}/queues/messages/process/action", // Get Messages
        (2, "DELETE", null) when r.Segments[1] == "messages" => $"{Queues}/queues/messages/delete",      // Clear Messages
        (3, "DELETE", null) when r.Segments[1] == "messages" => $"{Queues}/queues/messages/process/action", // Delete Message
        (3, "PUT", null) when r.Segments[1] == "messages" => $"{Queues}/queues/messages/write",          // Update Message
        _ => throw Unknown(r),
    };

    private static IReadOnlyList<Need> Table(StorageRequest r)
    {
        if (r.Segments.Count != 1) throw Unknown(r);
        var resource = r.Segments[0];
        var entity = resource.Contains("PartitionKey=", StringComparison.Ordinal);
        return (resource, entity, r.Method) switch
        {
            ("$batch", _, "POST") => [], // authorized operation by operation: the recorder notes each one
            ("Tables", _, "POST") => [new($"{Tables}/tables/write")],                                 // Create Table
            ("Tables", _, "GET") => [new($"{Tables}/tables/read")],                                   // Query Tables
            _ when resource.StartsWith("Tables(", StringComparison.Ordinal) && r.Method == "DELETE" => [new($"{Tables}/tables/delete")],
            _ when resource.StartsWith("Tables(", StringComparison.Ordinal) && r.Method == "GET" => [new($"{Tables}/tables/read")],
            (_, false, "POST") => [Insert],                                                            // Insert Entity
            (_, _, "GET") => [new($"{Tables}/tables/entities/read")],                                 // Query Entities, Get Entity
            (_, true, "DELETE") => [new($"{Tables}/tables/entities/delete")],
            // Update and Merge Entity (If-Match given) change an entity; Insert Or Replace/Merge may create one too.
            (_, true, "PUT" or "MERGE" or "PATCH") when r.IfMatch is not null => [Update],
            (_, true, "PUT" or "MERGE" or "PATCH") => [Insert, Update],
            _ => throw Unknown(r),
        };
    }

    // entities/write is "insert, merge, or replace"; add/action only inserts, update/action only changes.
    private static readonly Need Insert = new($"{Tables}/tables/entities/add/action", $"{Tables}/tables/entities/write");
    private static readonly Need Update = new($"{Tables}/tables/entities/update/action", $"{Tables}/tables/entities/write");

    private static InvalidOperationException Unknown(StorageRequest r)
        => new($"no permission known for the storage request {r}: add it to {nameof(StoragePermissions)} from the REST reference");
}

/// <summary>One permission a request needs, met by any one of <see cref="AnyOf"/>.</summary>
public sealed record Need(params string[] AnyOf)
{
    /// <summary>A need only one permission meets.</summary>
    public static implicit operator Need(string permission) => new(permission);

    /// <summary>Whether <paramref name="granted"/> meets it.</summary>
    public bool MetBy(IReadOnlySet<string> granted) => AnyOf.Any(granted.Contains);

    /// <inheritdoc />
    public override string ToString() => string.Join(" or ", AnyOf.Select(a => a["Microsoft.Storage/storageAccounts/".Length..]));

    /// <inheritdoc />
    public bool Equals(Need? other) => other is not null && AnyOf.SequenceEqual(other.AnyOf);

    /// <inheritdoc />
    public override int GetHashCode() => string.Join('|', AnyOf).GetHashCode(StringComparison.Ordinal);
}

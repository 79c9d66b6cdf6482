namespace Mta.Tests.Peers;

/// <summary>The storage service a request went to.</summary>
public enum StorageService
{
    /// <summary>Blob storage.</summary>
    Blob,

    /// <summary>Queue storage.</summary>
    Queue,

    /// <summary>Table storage.</summary>
    Table,
}

/// <summary>
/// One storage REST request as it went over the wire, reduced to what decides the permission it needs: the service,
/// the method, the path below the account, the query parameters and whether it was conditional (If-Match).
/// Operations inside a table batch are recorded one by one (each is authorized on its own).
/// </summary>
/// <param name="Service">The service.</param>
/// <param name="Method">The HTTP method (GET, PUT, MERGE, ...).</param>
/// <param name="Segments">The path below the account name, split at '/' and unescaped.</param>
/// <param name="Query">Query parameters, names in lower case.</param>
/// <param name="IfMatch">The If-Match header, if any.</param>
public sealed record StorageRequest(StorageService Service, string Method, IReadOnlyList<string> Segments,
    IReadOnlyDictionary<string, string> Query, string? IfMatch)
{
    /// <summary>Parses a request target (<c>/account/container/blob?comp=block</c>, or an absolute URL in a batch).</summary>
    public static StorageRequest From(StorageService service, string method, string target, string? ifMatch)
    {
        var uri = new Uri(new Uri("http://storage.invalid"), target);
        var segments = uri.AbsolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries).Skip(1) // the account
            .Select(Uri.UnescapeDataString).ToList();
        var query = uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .GroupBy(p => Uri.UnescapeDataString(p[0]).ToLowerInvariant())
            .ToDictionary(g => g.Key, g => g.First().Length > 1 ? Uri.UnescapeDataString(g.First()[1]) : "");
        return new StorageRequest(service, method.ToUpperInvariant(), segments, query, ifMatch);
    }

    /// <summary>A query parameter, or null.</summary>
    public string? this[string name] => Query.TryGetValue(name, out var v) ? v : null;

    /// <inheritdoc />
    public override string ToString()
        => $"{Service} {Method} /{string.Join('/', Segments)}{(Query.Count == 0 ? "" : "?" + string.Join('&', Query.Select(q => $"{q.Key}={q.Value}")))}"
           + (IfMatch is null ? "" : $" (If-Match: {IfMatch})");
}

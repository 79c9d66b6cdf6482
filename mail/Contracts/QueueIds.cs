namespace Mta.Mail.Contracts;

/// <summary>
/// Queue ids, job ids, blob names and spool references come back from queue messages and tables, which anyone with
/// the storage key (or a bug) can write. Before one names a blob, a table row or a file, or joins a space-separated
/// reference set, it must look like what the MTA makes: letters, digits and <c>. - _ :</c>, at most 100 characters,
/// no <c>..</c> — so it cannot climb out of a container or folder, split a set or carry a line break.
/// </summary>
public static class QueueIds
{
    /// <summary>Whether <paramref name="id"/> is safe to use as a name.</summary>
    public static bool IsSafe(string? id)
        => id is { Length: > 0 and <= 100 } && id[0] != '.' && !id.Contains("..", StringComparison.Ordinal)
           && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or ':');

    /// <summary>Throws <see cref="InvalidQueueMessageException"/> unless every one of <paramref name="ids"/> is safe.</summary>
    public static void Require(string what, params string?[] ids)
    {
        foreach (var id in ids)
            if (!IsSafe(id))
                throw new InvalidQueueMessageException($"{what} with an unusable id or blob name: {Shown(id)}");
    }

    // Only the safe characters of it, so the log line the exception makes is not an injection of its own.
    private static string Shown(string? id)
        => id is null ? "(none)" : new string(id.Take(100).Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or ':' ? c : '?').ToArray());
}

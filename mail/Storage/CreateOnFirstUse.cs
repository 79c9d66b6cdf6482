using Azure;

namespace Mta.Mail.Storage;

/// <summary>
/// Writes into a queue, blob container or table that may not exist yet — a new account, storage that came up after
/// this process did, the first completion record of a new day — are tried as they are, and on a 404 the missing
/// resource is created and the write tried once more. Cheaper than creating before every write, and one place for it.
/// </summary>
public static class CreateOnFirstUse
{
    /// <summary>Runs <paramref name="write"/>; if its target is missing, runs <paramref name="create"/> and the write again.</summary>
    public static async Task<T> WriteAsync<T>(Func<Task<T>> write, Func<Task> create)
    {
        try
        {
            return await write();
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            await create();
            return await write();
        }
    }

    /// <summary>As <see cref="WriteAsync{T}"/>, for writes without a result.</summary>
    public static Task WriteAsync(Func<Task> write, Func<Task> create)
        => WriteAsync(async () => { await write(); return true; }, create);
}

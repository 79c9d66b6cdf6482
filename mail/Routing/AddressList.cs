namespace Mta.Mail.Routing;

/// <summary>
/// A file of addresses, local parts or <c>@domain</c> entries, one per line (<c>#</c> comments, blank lines skipped),
/// as Postfix's recipient tables list them. Compared with ASCII case folding only (<see cref="AsciiCaseComparer"/>).
/// </summary>
public static class AddressList
{
    /// <summary>The entries of <paramref name="lines"/> (the path is for <see cref="Configuration.WatchedFile{T}"/>'s messages).</summary>
    public static HashSet<string> Parse(string[] lines, string path)
        => new(lines.Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#'), AsciiCaseComparer.Instance);
}

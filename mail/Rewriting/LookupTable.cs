using Mta.Mail.Configuration;

namespace Mta.Mail.Rewriting;

/// <summary>
/// A Postfix-style lookup table file (the text that <c>postmap</c> would compile): one <c>key value</c>
/// entry per line, <c>#</c> comments, blank lines, and continuation lines that start with white space.
/// Keys compare case-insensitively. The file is read again when it changes (see <see cref="WatchedFile{T}"/>).
/// </summary>
public sealed class LookupTable
{
    private readonly WatchedFile<Dictionary<string, string>>? _file;

    private LookupTable(WatchedFile<Dictionary<string, string>>? file) => _file = file;

    /// <summary>A table without entries (the option is not set).</summary>
    public static LookupTable Empty { get; } = new(null);

    /// <summary>
    /// Loads a table file; errors name the file and line. A null or empty path gives <see cref="Empty"/>.
    /// <paramref name="reloadFailed"/> hears about a changed file that could not be read (the old table stays).
    /// </summary>
    public static LookupTable Load(string? path, Action<string>? reloadFailed = null)
        => string.IsNullOrEmpty(path) ? Empty : new LookupTable(new WatchedFile<Dictionary<string, string>>(path, Parse, reloadFailed));

    /// <summary>Parses table text; <paramref name="source"/> names it in error messages.</summary>
    public static Dictionary<string, string> Parse(IEnumerable<string> lines, string source)
    {
        var entries = new Dictionary<string, string>(Mta.Mail.Routing.AsciiCaseComparer.Instance);
        string? key = null;
        var lineNo = 0;
        var keyLine = new Dictionary<string, int>(Mta.Mail.Routing.AsciiCaseComparer.Instance);
        foreach (var raw in lines)
        {
            lineNo++;
            if (raw.Trim().Length == 0 || raw.TrimStart().StartsWith('#')) continue;
            if (char.IsWhiteSpace(raw[0]))
            {
                // A continuation of the previous entry's value (postmap(1): a logical line starts with non-white space).
                if (key is null) throw new FormatException($"{source}:{lineNo}: continuation line without an entry before it");
                entries[key] = entries[key] + " " + raw.Trim();
                continue;
            }
            var parts = raw.Trim().Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                throw new FormatException($"{source}:{lineNo}: expected 'key value', got '{raw.Trim()}'");
            if (keyLine.TryGetValue(parts[0], out var first))
                throw new FormatException($"{source}:{lineNo}: duplicate entry '{parts[0]}' (first on line {first})");
            key = parts[0];
            keyLine[key] = lineNo;
            entries[key] = parts[1].Trim();
        }
        return entries;
    }

    /// <summary>The value for <paramref name="key"/>, or null.</summary>
    public string? Find(string key) => _file?.Value.GetValueOrDefault(key);

    /// <summary>Every entry, as the file now holds them.</summary>
    public IEnumerable<KeyValuePair<string, string>> Entries => _file?.Value ?? [];

    /// <summary>Number of entries.</summary>
    public int Count => _file?.Value.Count ?? 0;
}

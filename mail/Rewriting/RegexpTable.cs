using System.Text.RegularExpressions;

namespace Mta.Mail.Rewriting;

/// <summary>One line of a regexp table: its pattern, whether it is negated, what follows it, and where it is written.</summary>
/// <param name="Pattern">The compiled pattern.</param>
/// <param name="Negated"><c>!/pattern/</c>: the line applies when the pattern does not match.</param>
/// <param name="Result">The text after the pattern and its flags (an action, a category), trimmed.</param>
/// <param name="Where">File and line, for errors and the log.</param>
public sealed record RegexpEntry(Regex Pattern, bool Negated, string Result, string Where)
{
    /// <summary>Whether the line applies to <paramref name="input"/>.</summary>
    public bool Applies(string input) => Pattern.IsMatch(input) != Negated;
}

/// <summary>
/// Postfix's regexp_table(5) syntax: <c>/pattern/flags result</c> per line, <c>!/pattern/</c> for "does not match",
/// <c>#</c> comments and blank lines. Patterns are case-insensitive unless the <c>i</c> flag turns that off; <c>m</c>
/// and <c>x</c> as in Perl. They run on .NET's non-backtracking engine (linear in the input) unless they need what
/// only backtracking offers (backreferences, lookarounds); those have a time limit per match. Used by header and body
/// checks and by the bounce classification rules; each reads its own meaning into the result.
/// </summary>
public static class RegexpTable
{
    /// <summary>The time limit of one match of a backtracking pattern.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(200);

    /// <summary>Parses table text; errors (<see cref="FormatException"/>) name <paramref name="source"/> and the line.</summary>
    /// <param name="lines">The file's lines.</param>
    /// <param name="source">The file's name.</param>
    /// <param name="result">What the result is called in the table's own terms (ACTION, CATEGORY), for errors.</param>
    public static IReadOnlyList<RegexpEntry> Parse(string[] lines, string source, string result = "RESULT")
    {
        var entries = new List<RegexpEntry>();
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            entries.Add(ParseLine(line, $"{source}:{i + 1}", result));
        }
        return entries;
    }

    private static RegexpEntry ParseLine(string line, string where, string result)
    {
        var negated = line[0] == '!';
        if (negated) line = line[1..];
        if (line.Length < 2 || line[0] != '/')
            throw new FormatException($"{where}: expected '/pattern/ {result}', got '{line}'");
        var close = ClosingSlash(line);
        if (close < 0) throw new FormatException($"{where}: pattern without a closing '/'");
        var rest = line[(close + 1)..];
        var flagsEnd = 0;
        while (flagsEnd < rest.Length && !char.IsWhiteSpace(rest[flagsEnd])) flagsEnd++;
        var options = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant;
        foreach (var f in rest[..flagsEnd])
            options = f switch
            {
                'i' => options ^ RegexOptions.IgnoreCase,
                'm' => options | RegexOptions.Multiline,
                'x' => options | RegexOptions.IgnorePatternWhitespace,
                _ => throw new FormatException($"{where}: unknown flag '{f}' (known: i, m, x)"),
            };
        try { return new RegexpEntry(Compile(line[1..close], options), negated, rest[flagsEnd..].Trim(), where); }
        catch (ArgumentException e) { throw new FormatException($"{where}: bad pattern: {e.Message}"); }
    }

    /// <summary>Non-backtracking where the pattern allows it, else backtracking with <see cref="MatchTimeout"/>.</summary>
    public static Regex Compile(string pattern, RegexOptions options)
    {
        try { return new Regex(pattern, options | RegexOptions.NonBacktracking, MatchTimeout); }
        catch (NotSupportedException) { return new Regex(pattern, options, MatchTimeout); }
    }

    // The first '/' not escaped by a backslash ends the pattern.
    private static int ClosingSlash(string line)
    {
        for (var i = 1; i < line.Length; i++)
        {
            if (line[i] == '\\') { i++; continue; }
            if (line[i] == '/') return i;
        }
        return -1;
    }
}

namespace Mta.Mail.Routing;

/// <summary>
/// Address comparison as SMTP means it: only ASCII letters fold (RFC 5321 §2.4 leaves local parts case-sensitive;
/// every MTA folds ASCII). .NET's <see cref="StringComparer.OrdinalIgnoreCase"/> and <c>ToLowerInvariant</c> fold
/// Unicode too, and not alike (the Kelvin sign U+212A lowers to <c>k</c> but does not compare equal to it), so a name
/// a table refuses could reach the mailbox of one it lists. Every table of addresses and every mailbox name folds here.
/// </summary>
public sealed class AsciiCaseComparer : IEqualityComparer<string>
{
    /// <summary>The one instance.</summary>
    public static readonly AsciiCaseComparer Instance = new();

    /// <summary><paramref name="text"/> with A–Z lowered and everything else as it is.</summary>
    public static string Fold(string text)
        => text.Any(char.IsAsciiLetterUpper) ? string.Create(text.Length, text, (span, t) =>
        {
            for (var i = 0; i < t.Length; i++) span[i] = char.IsAsciiLetterUpper(t[i]) ? (char)(t[i] | 0x20) : t[i];
        }) : text;

    /// <inheritdoc />
    public bool Equals(string? x, string? y) => x is null || y is null ? x == y : x.Length == y.Length && Fold(x) == Fold(y);

    /// <inheritdoc />
    public int GetHashCode(string text) => StringComparer.Ordinal.GetHashCode(Fold(text));
}

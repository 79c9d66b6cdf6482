using Mta.Mail.Contracts;

namespace Mta.Ingress.Injection;

/// <summary>
/// A request's envelope options beside its content: the DSN options (RFC 3461) as MAIL and RCPT would carry them, and
/// the tags carried to the delivery log. Checked with the rest of the request; a bad one names its field.
/// </summary>
public static class InjectionMetadata
{
    /// <summary>Most tags a request may have.</summary>
    public const int MaxTags = 16;

    /// <summary>The tag every message gets: the token's tenant.</summary>
    public const string TenantTag = "tenant";

    private static readonly string[] NotifyWords = ["SUCCESS", "FAILURE", "DELAY"];

    /// <summary>Adds a problem for each bad DSN option or tag of <paramref name="request"/>.</summary>
    public static void Check(InjectionRequest request, List<InjectionProblem> problems)
    {
        if (request.Dsn is { } dsn)
        {
            if (dsn.Ret is not null && dsn.Ret.ToUpperInvariant() is not ("FULL" or "HDRS"))
                problems.Add(new("/dsn/ret", "FULL or HDRS"));
            // RFC 3461 §4.4: at most 100 characters; printable ASCII, so it can go into a report unchanged.
            if (dsn.EnvelopeId is not null && (dsn.EnvelopeId.Length is 0 or > 100 || dsn.EnvelopeId.Any(c => c is < '!' or > '~')))
                problems.Add(new("/dsn/envid", "1 to 100 printable ASCII characters, no spaces"));
            if (dsn.Notify is not null && Notify(dsn.Notify) is null)
                problems.Add(new("/dsn/notify", "NEVER, or a comma list of SUCCESS, FAILURE and DELAY"));
        }
        if (request.Tags is not { } tags) return;
        if (tags.Count > MaxTags) problems.Add(new("/tags", $"{tags.Count} tags, more than {MaxTags}"));
        foreach (var (name, value) in tags.Take(MaxTags + 1))
        {
            if (name.Length is 0 or > 32 || !name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-'))
                problems.Add(new($"/tags/{name}", "a tag name is 1 to 32 of a-z, 0-9, _ and -"));
            else if (name == TenantTag)
                problems.Add(new($"/tags/{name}", "set from the token, not here"));
            else if (value is null || value.Length is 0 or > 128 || value.Any(c => c is < '!' or > '~' or ',' or ';'))
                problems.Add(new($"/tags/{name}", "a tag value is 1 to 128 printable ASCII characters, without spaces, commas or semicolons"));
        }
    }

    /// <summary>NOTIFY in its canonical form (upper case, RFC 3461 order), or null when it is not valid.</summary>
    public static string? Notify(string value)
    {
        var words = value.Split(',', StringSplitOptions.TrimEntries).Select(w => w.ToUpperInvariant()).ToList();
        if (words is ["NEVER"]) return "NEVER";
        if (words.Count == 0 || words.Any(w => !NotifyWords.Contains(w)) || words.Distinct().Count() != words.Count) return null;
        return string.Join(',', NotifyWords.Where(words.Contains));
    }

    /// <summary>The DSN request for a message to <paramref name="recipients"/>, or null when the request asked for none.</summary>
    public static DsnRequest? Dsn(InjectionRequest request, IEnumerable<string> recipients)
    {
        if (request.Dsn is not { } dsn || dsn.Ret is null && dsn.EnvelopeId is null && dsn.Notify is null) return null;
        var notify = dsn.Notify is null ? null : Notify(dsn.Notify);
        return new DsnRequest
        {
            Ret = dsn.Ret?.ToUpperInvariant(),
            EnvelopeId = dsn.EnvelopeId,
            Recipients = notify is null ? new Dictionary<string, RecipientDsn>()
                : recipients.Distinct(StringComparer.OrdinalIgnoreCase).ToDictionary(r => r, _ => new RecipientDsn(notify, null), StringComparer.OrdinalIgnoreCase),
        };
    }

    /// <summary>The request's tags with the tenant's.</summary>
    public static IReadOnlyDictionary<string, string> Tags(InjectionRequest request, string tenant)
        => new Dictionary<string, string>(request.Tags ?? [], StringComparer.Ordinal) { [TenantTag] = tenant };
}

using MimeKit;
using Mta.Mail.Contracts;

namespace Mta.Mail.Events;

/// <summary>
/// A message's tags as cleanup settles them: the envelope's own (the injection API's, the token's tenant), the values
/// of the header fields in <c>Mta:TagHeaders</c> under their lower-case names, and the SASL login of a logged-in SMTP
/// client as <c>login</c> (injected mail has its <c>tenant</c> instead). What the envelope had first stays. Values are
/// one line of at most 200 characters. Pure.
/// </summary>
public static class EventTags
{
    /// <summary>The longest value kept.</summary>
    public const int MaxValue = 200;

    /// <summary>The tags for <paramref name="envelope"/>'s jobs and events; null when there are none.</summary>
    public static IReadOnlyDictionary<string, string>? Of(IncomingEnvelope envelope, HeaderList fields, IReadOnlyList<string> headers)
    {
        if (headers.Count == 0 && envelope.Login is null) return envelope.Tags;
        var tags = new Dictionary<string, string>(envelope.Tags ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        foreach (var name in headers)
            if (fields[name] is { } value && OneLine(value) is { Length: > 0 } line)
                tags.TryAdd(name.ToLowerInvariant(), line);
        if (envelope.Login is { Length: > 0 } login && !tags.ContainsKey(OutcomeEvents.TenantTag)) tags.TryAdd("login", OneLine(login));
        return tags.Count == 0 ? null : tags;
    }

    private static string OneLine(string value)
    {
        var line = string.Join(' ', value.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        line = new string(line.Where(c => !char.IsControl(c)).ToArray());
        return line.Length > MaxValue ? line[..MaxValue] : line;
    }
}

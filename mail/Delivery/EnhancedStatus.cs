namespace Mta.Mail.Delivery;

/// <summary>RFC 3463 enhanced status codes (<c>class.subject.detail</c>) as found in replies and reasons.</summary>
public static class EnhancedStatus
{
    /// <summary>The first code among the first words of <paramref name="text"/> (<c>550 5.1.1 ...</c>, <c>4.4.1 ...</c>), or null.</summary>
    public static string? Find(string text)
    {
        foreach (var token in text.Split(' ', 3))
        {
            var parts = token.Split('.');
            if (parts.Length == 3 && parts[0] is "2" or "4" or "5"
                && parts[1].Length is > 0 and <= 3 && parts[1].All(char.IsAsciiDigit)
                && parts[2].Length is > 0 and <= 3 && parts[2].All(char.IsAsciiDigit))
                return token;
        }
        return null;
    }

    /// <summary>The code for a recipient's outcome: the one in its reply, in the outcome's class, or a generic one.</summary>
    public static string For(RecipientStatus status, string detail)
    {
        var cls = status switch { RecipientStatus.Delivered => "2", RecipientStatus.Deferred => "4", _ => "5" };
        return Find(detail) is { } code ? cls + code[1..] : cls + ".0.0";
    }
}

using System.Security.Cryptography;

namespace Mta.Ingress.Acceptance;

/// <summary>
/// Queue ids in Postfix's spirit: short, upper-case, unique and roughly time-ordered
/// (so a blob listing sorts by arrival). 10 hex digits of milliseconds plus 6 random.
/// </summary>
public static class QueueId
{
    /// <summary>A new id.</summary>
    public static string New(DateTimeOffset now)
    {
        Span<byte> random = stackalloc byte[3];
        RandomNumberGenerator.Fill(random);
        return (now.ToUnixTimeMilliseconds() & 0xFF_FFFF_FFFF).ToString("X10") + Convert.ToHexString(random);
    }

    /// <summary>
    /// The id of message <paramref name="n"/> of an injection request that began at <paramref name="start"/> with
    /// <paramref name="salt"/> (6 hex digits): the same every time it is computed, so a retried request queues its
    /// messages under the ids they had. Twenty digits, so never equal to an SMTP message's sixteen.
    /// </summary>
    public static string Injected(DateTimeOffset start, string salt, int n)
        => (start.ToUnixTimeMilliseconds() & 0xFF_FFFF_FFFF).ToString("X10") + salt + n.ToString("X4");

    /// <summary>A new salt for <see cref="Injected"/>.</summary>
    public static string NewSalt() => Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3));
}

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
}

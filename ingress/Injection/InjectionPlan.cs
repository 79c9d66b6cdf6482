using System.Security.Cryptography;
using MimeKit;

namespace Mta.Ingress.Injection;

/// <summary>
/// The messages an injection request makes: every recipient's message is rendered once and measured before anything
/// is queued (a request is refused whole or queued whole), and recipients whose messages come out octet for octet the
/// same share one message — stored once, its recipients routed into jobs per next hop by cleanup as an SMTP message's
/// are. Message <c>n</c> is its first recipient's; its octets are kept from the rehearsal up to
/// <see cref="KeptOctets"/> a request.
/// </summary>
public sealed class InjectionPlan
{
    /// <summary>CRLF line ends, as the spool and SMTP have them.</summary>
    public static readonly FormatOptions Crlf = MakeFormat();

    /// <summary>Rendered messages kept from the rehearsal, per request, so they are not rendered twice; past it they are rendered again.</summary>
    public const long KeptOctets = 16 * 1024 * 1024;

    private readonly IReadOnlyList<byte[]?> _octets;

    private InjectionPlan(IReadOnlyList<int[]> messages, IReadOnlyList<byte[]?> octets) => (Messages, _octets) = (messages, octets);

    /// <summary>Each message's recipients, as indexes into the request's recipients, in the order of their first recipient.</summary>
    public IReadOnlyList<int[]> Messages { get; }

    /// <summary>Message <paramref name="n"/>'s octets as the rehearsal rendered them, when they were kept.</summary>
    public byte[]? Octets(int n) => _octets[n];

    /// <summary>Renders every recipient's message: the plan, or the first problem (a template field missing, a message over the size limit).</summary>
    public static (InjectionPlan? Plan, InjectionProblem? Problem) Rehearse(InjectionComposer composer, long sizeLimit)
    {
        var groups = new Dictionary<Digest, List<int>>();
        var order = new List<List<int>>();
        var kept = new List<byte[]?>();
        long keptOctets = 0;
        for (var i = 0; i < composer.Recipients.Count; i++)
        {
            var (octets, problem) = composer.Render(i);
            if (problem is not null) return (null, problem);
            if (octets!.Length > sizeLimit)
                return (null, new($"/recipients/{i}", $"larger than the message size limit ({octets.Length} > {sizeLimit} octets)", 413));
            var digest = Digest.Of(octets);
            if (groups.TryGetValue(digest, out var group))
            {
                group.Add(i);
                continue;
            }
            groups[digest] = group = [i];
            order.Add(group);
            var keep = keptOctets + octets.Length <= KeptOctets;
            kept.Add(keep ? octets : null);
            if (keep) keptOctets += octets.Length;
        }
        return (new InjectionPlan(order.Select(g => g.ToArray()).ToList(), kept), null);
    }

    private static FormatOptions MakeFormat()
    {
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        return format;
    }

    // SHA-256 of a message's octets: equal digests, equal messages.
    private readonly record struct Digest(Int128 High, Int128 Low)
    {
        public static Digest Of(byte[] octets)
        {
            Span<byte> sum = stackalloc byte[32];
            SHA256.HashData(octets, sum);
            return new(System.Buffers.Binary.BinaryPrimitives.ReadInt128LittleEndian(sum), System.Buffers.Binary.BinaryPrimitives.ReadInt128LittleEndian(sum[16..]));
        }
    }
}

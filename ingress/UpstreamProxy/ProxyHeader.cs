using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mta.Ingress.UpstreamProxy;

/// <summary>What the start of a connection from a load balancer said, as far as it has arrived.</summary>
public enum ProxyHeaderKind
{
    /// <summary>More octets are needed before it can be told.</summary>
    Incomplete,

    /// <summary>Not a PROXY protocol header, or a malformed one: <see cref="ProxyHeader.Error"/> says why.</summary>
    Invalid,

    /// <summary>The balancer relays a client: <see cref="ProxyHeader.Source"/> and <see cref="ProxyHeader.Destination"/> are its.</summary>
    Proxied,

    /// <summary>
    /// The balancer speaks for itself (v2 <c>LOCAL</c>, v1 <c>UNKNOWN</c>, v2 <c>AF_UNSPEC</c>), as in its health checks:
    /// the connection's own addresses stand.
    /// </summary>
    Local,
}

/// <summary>
/// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) a load balancer sends before the client's
/// first octet: the client's real address and port, and the address it connected to. Postfix reads it when
/// <c>smtpd_upstream_proxy_protocol = haproxy</c>. Parsing only; <see cref="UpstreamProxyGate"/> decides what to do.
/// </summary>
/// <param name="Kind">What was found.</param>
/// <param name="Length">Octets the header takes (to skip before SMTP starts); 0 unless proxied or local.</param>
/// <param name="Source">The client, when proxied.</param>
/// <param name="Destination">The address the client connected to, when proxied.</param>
/// <param name="Error">Why it is invalid, in Postfix's words where Postfix has some.</param>
public readonly record struct ProxyHeader(ProxyHeaderKind Kind, int Length = 0, IPEndPoint? Source = null, IPEndPoint? Destination = null,
    string? Error = null)
{
    /// <summary>Longest version 1 header, CRLF included (the specification's 107 octets).</summary>
    public const int MaxV1Length = 107;

    private static ReadOnlySpan<byte> V1Prefix => "PROXY "u8;

    private static ReadOnlySpan<byte> V2Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    private const int V2FixedLength = 16;

    private static ProxyHeader Bad(string error) => new(ProxyHeaderKind.Invalid, Error: error);

    private static readonly ProxyHeader More = new(ProxyHeaderKind.Incomplete);

    /// <summary>
    /// Reads a header from the start of <paramref name="input"/>: <see cref="ProxyHeaderKind.Incomplete"/> only while what
    /// has arrived is still the start of a valid one, so a client that speaks SMTP at once is told apart at once.
    /// </summary>
    public static ProxyHeader Parse(ReadOnlySequence<byte> input)
    {
        Span<byte> start = stackalloc byte[V2FixedLength];
        var have = (int)Math.Min(input.Length, V2FixedLength);
        input.Slice(0, have).CopyTo(start);
        start = start[..have];
        if (IsPrefixOf(start, V1Prefix)) return ParseV1(input);
        if (IsPrefixOf(start, V2Signature)) return ParseV2(input, start);
        return Bad("unrecognized protocol header");
    }

    // True when what arrived agrees with the first octets of `expected` as far as either goes.
    private static bool IsPrefixOf(ReadOnlySpan<byte> have, ReadOnlySpan<byte> expected)
    {
        var n = Math.Min(have.Length, expected.Length);
        return have.Length > 0 && have[..n].SequenceEqual(expected[..n]);
    }

    private static ProxyHeader ParseV1(ReadOnlySequence<byte> input)
    {
        var window = input.Slice(0, Math.Min(input.Length, MaxV1Length));
        var end = window.PositionOf((byte)'\n');
        if (end is null)
            return window.Length < MaxV1Length ? More : Bad("version 1 header longer than 107 octets");
        var line = window.Slice(0, end.Value).ToArray();
        if (line.Length < 1 || line[^1] != '\r') return Bad("version 1 header not ended by CRLF");
        var length = line.Length + 1;
        var fields = Encoding.ASCII.GetString(line, 0, line.Length - 1).Split(' ');
        if (fields.Length >= 2 && fields[1] == "UNKNOWN") return new ProxyHeader(ProxyHeaderKind.Local, length);
        if (fields.Length != 6) return Bad("bad command in proxy header");
        var family = fields[1] switch { "TCP4" => AddressFamily.InterNetwork, "TCP6" => AddressFamily.InterNetworkV6, _ => AddressFamily.Unknown };
        if (family == AddressFamily.Unknown) return Bad("unsupported network protocol");
        if (!TryAddress(fields[2], family, out var source) || !TryPort(fields[4], out var sourcePort))
            return Bad("client network address conversion error");
        if (!TryAddress(fields[3], family, out var destination) || !TryPort(fields[5], out var destinationPort))
            return Bad("server network address conversion error");
        return new ProxyHeader(ProxyHeaderKind.Proxied, length, new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort));
    }

    // Strict forms only: IPAddress.TryParse also takes "1" for 0.0.0.1 and scope suffixes ("fe80::1%eth0").
    private static bool TryAddress(string text, AddressFamily family, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.Contains('%') || !IPAddress.TryParse(text, out var parsed) || parsed.AddressFamily != family) return false;
        if (family == AddressFamily.InterNetwork && parsed.ToString() != text) return false;
        address = parsed;
        return true;
    }

    private static bool TryPort(string text, out int port)
    {
        port = 0;
        return text.Length is > 0 and <= 5 && text.All(char.IsAsciiDigit) && (text.Length == 1 || text[0] != '0')
            && int.TryParse(text, out port) && port <= ushort.MaxValue;
    }

    private static ProxyHeader ParseV2(ReadOnlySequence<byte> input, ReadOnlySpan<byte> start)
    {
        if (start.Length < V2FixedLength) return More;
        if (start[12] >> 4 != 2) return Bad("unrecognized protocol version");
        var command = start[12] & 0x0F;
        if (command > 1) return Bad("bad command in proxy header");
        var addressLength = BinaryPrimitives.ReadUInt16BigEndian(start[14..]);
        var length = V2FixedLength + addressLength;
        if (input.Length < length) return More;
        if (command == 0) return new ProxyHeader(ProxyHeaderKind.Local, length); // LOCAL: the balancer's own check
        var addresses = input.Slice(V2FixedLength, addressLength).ToArray();
        return (start[13] >> 4, start[13] & 0x0F) switch
        {
            (0, _) => new ProxyHeader(ProxyHeaderKind.Local, length), // AF_UNSPEC: the specification says use the real ends
            (1 or 2, not 1) => Bad("unsupported network protocol"), // only TCP (STREAM) carries SMTP
            (1, _) => Inet(addresses, 4, length),
            (2, _) => Inet(addresses, 16, length),
            _ => Bad("unsupported network protocol"), // AF_UNIX and unknown: no address to decide by
        };
    }

    private static ProxyHeader Inet(byte[] block, int size, int length)
    {
        // source address, destination address, source port, destination port; TLVs may follow and are skipped.
        if (block.Length < 2 * size + 4) return Bad("short address field");
        var source = new IPAddress(block.AsSpan(0, size));
        var destination = new IPAddress(block.AsSpan(size, size));
        var sourcePort = BinaryPrimitives.ReadUInt16BigEndian(block.AsSpan(2 * size));
        var destinationPort = BinaryPrimitives.ReadUInt16BigEndian(block.AsSpan(2 * size + 2));
        return new ProxyHeader(ProxyHeaderKind.Proxied, length, new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort));
    }
}

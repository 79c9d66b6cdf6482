using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;

namespace Mta.Ingress.Milter;

/// <summary>One answer from a milter, parsed and checked (<see cref="Parse"/>); anything malformed is a protocol error.</summary>
public abstract record MilterReply
{
    /// <summary>A verdict or step without data: accept, continue, discard, reject, tempfail, skip, progress, shutdown.</summary>
    public sealed record Simple(MilterReplyCode Code) : MilterReply;

    /// <summary>SMFIR_REPLYCODE: a whole 4xx or 5xx SMTP reply, lines joined by CRLF.</summary>
    public sealed record Reply(string Text) : MilterReply
    {
        /// <summary>True for a 4xx reply.</summary>
        public bool Temporary => Text[0] == '4';
    }

    /// <summary>SMFIR_QUARANTINE: hold the message, with the reason.</summary>
    public sealed record Quarantine(string Reason) : MilterReply;

    /// <summary>SMFIR_ADDHEADER, SMFIR_INSHEADER (at <paramref name="Index"/>), SMFIR_CHGHEADER (the n-th field of that name; an empty value deletes it).</summary>
    public sealed record HeaderChange(MilterReplyCode Code, int Index, string Name, string Value) : MilterReply;

    /// <summary>SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR, SMFIR_DELRCPT, SMFIR_CHGFROM: an envelope address, with ESMTP parameters when given.</summary>
    public sealed record EnvelopeChange(MilterReplyCode Code, string Address, string? Parameters) : MilterReply;

    /// <summary>SMFIR_REPLBODY: a part of the new body.</summary>
    public sealed record BodyPart(byte[] Octets) : MilterReply;

    /// <summary>SMFIR_SETSYMLIST: the macros the milter wants at the event <paramref name="Stage"/>.</summary>
    public sealed record SymbolList(int Stage, string Macros) : MilterReply;

    /// <summary>The answer to SMFIC_OPTNEG, with the macros the milter asks for per stage (SMFIM_* numbers) when it sends any.</summary>
    public sealed record Negotiated(uint Version, MilterActions Actions, MilterSteps Steps) : MilterReply
    {
        /// <summary>Macro names by stage number, as the milter listed them after the three numbers.</summary>
        public IReadOnlyDictionary<int, string> Macros { get; init; } = new Dictionary<int, string>();
    }

    /// <summary>One reply line: a 4xx or 5xx code, then nothing or a space or hyphen and printable text.</summary>
    private static readonly Regex SmtpReplyLine = new(@"^[45][0-9][0-9]([ -][\x20-\x7e\u0080-\uffff]*)?$", RegexOptions.CultureInvariant);

    /// <summary>The most lines and octets per line a milter's reply may have (RFC 5321 §4.5.3.1.5: 512 octets a line).</summary>
    public const int MaxReplyLines = 20, MaxReplyLineLength = 512;

    /// <summary>Parses one packet from a milter.</summary>
    public static MilterReply Parse(byte code, byte[] data)
    {
        var reply = (MilterReplyCode)code;
        return reply switch
        {
            MilterReplyCode.Accept or MilterReplyCode.Continue or MilterReplyCode.Discard or MilterReplyCode.Reject
                or MilterReplyCode.Tempfail or MilterReplyCode.Skip or MilterReplyCode.Progress or MilterReplyCode.Shutdown
                or MilterReplyCode.ConnectionFailure => new Simple(reply),
            MilterReplyCode.ReplyCode => ReplyCode(data),
            MilterReplyCode.Quarantine => new Quarantine(Strings(data, 1, 1)[0]),
            MilterReplyCode.AddHeader => Header(reply, -1, Strings(data, 2, 2)),
            MilterReplyCode.InsertHeader or MilterReplyCode.ChangeHeader => Header(reply, Number(data), Strings(data[4..], 2, 2)),
            MilterReplyCode.AddRecipient or MilterReplyCode.DeleteRecipient => Envelope(reply, Strings(data, 1, 1)),
            MilterReplyCode.AddRecipientWithParameters or MilterReplyCode.ChangeFrom => Envelope(reply, Strings(data, 1, 2)),
            MilterReplyCode.ReplaceBody => new BodyPart(data),
            MilterReplyCode.SetSymbolList => new SymbolList(Number(data), Strings(data[4..], 1, 1)[0]),
            MilterReplyCode.OptionNegotiation => Negotiation(data),
            _ => throw new MilterProtocolException($"unknown reply code '{(char)code}' (0x{code:x2})"),
        };
    }

    /// <summary>
    /// SMFIR_REPLYCODE: lines joined by CRLF, each a 4xx or 5xx reply line with the same code, none too long, nothing
    /// between them but CRLF (a bare CR or LF, or a line of another code, could smuggle a reply of its own to the
    /// client). The lines are sent as multi-line SMTP: every line but the last with a hyphen.
    /// </summary>
    private static Reply ReplyCode(byte[] data)
    {
        var text = Strings(data, 1, 1)[0];
        var lines = text.Split("\r\n");
        if (lines.Length > MaxReplyLines || lines.Any(l => l.Length > MaxReplyLineLength || !SmtpReplyLine.IsMatch(l) || l[..3] != lines[0][..3]))
            throw new MilterProtocolException($"malformed reply code: {Printable(text)}");
        return new Reply(string.Join("\r\n", lines.Select((l, i) => l.Length == 3 ? l + (i < lines.Length - 1 ? "-" : " ")
            : l[..3] + (i < lines.Length - 1 ? '-' : ' ') + l[4..])));
    }

    private static HeaderChange Header(MilterReplyCode code, int index, string[] fields)
        => fields[0].Length > 0 && fields[0].All(c => c is > ' ' and < (char)127 and not ':')
            ? new HeaderChange(code, index, fields[0], fields[1])
            : throw new MilterProtocolException($"malformed header name: {Printable(fields[0])}");

    private static EnvelopeChange Envelope(MilterReplyCode code, string[] fields)
        => fields[0].Length > 0 && !fields[0].Any(char.IsControl)
            ? new EnvelopeChange(code, fields[0], fields.Length > 1 && fields[1].Length > 0 ? fields[1] : null)
            : throw new MilterProtocolException($"malformed address: {Printable(fields[0])}");

    private static Negotiated Negotiation(byte[] data)
    {
        if (data.Length < 12) throw new MilterProtocolException($"option negotiation of {data.Length} octets, 12 expected");
        var version = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (version is < 2 or > MilterProtocol.Version) throw new MilterProtocolException($"protocol version {version} not supported");
        return new Negotiated(version, (MilterActions)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4)),
            (MilterSteps)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(8))) { Macros = SymbolLists(data[12..]) };
    }

    /// <summary>What follows the numbers in a negotiation reply: stage number and NUL-ended macro list, repeated.</summary>
    private static Dictionary<int, string> SymbolLists(byte[] data)
    {
        var lists = new Dictionary<int, string>();
        var rest = data.AsSpan();
        while (rest.Length > 0)
        {
            if (rest.Length < 5) throw new MilterProtocolException("a macro list without its stage or its names");
            var stage = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(rest), int.MaxValue);
            var end = rest[4..].IndexOf((byte)0);
            if (end < 0) throw new MilterProtocolException("a macro list without its terminating NUL");
            lists[stage] = Encoding.UTF8.GetString(rest.Slice(4, end));
            rest = rest[(4 + end + 1)..];
        }
        return lists;
    }

    private static int Number(byte[] data)
        => data.Length >= 4 ? (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(data), int.MaxValue)
            : throw new MilterProtocolException("a reply without its 4-octet number");

    /// <summary>NUL-terminated UTF-8 strings: at least <paramref name="min"/>, at most <paramref name="max"/>, each ended.</summary>
    private static string[] Strings(byte[] data, int min, int max)
    {
        if (data.Length == 0 || data[^1] != 0) throw new MilterProtocolException("a string without its terminating NUL");
        var parts = Encoding.UTF8.GetString(data, 0, data.Length - 1).Split('\0');
        return parts.Length >= min && parts.Length <= max ? parts
            : throw new MilterProtocolException($"{parts.Length} strings where {min} to {max} belong");
    }

    private static string Printable(string s) => new([.. s.Take(100).Select(c => c is >= ' ' and < (char)127 ? c : '?')]);
}

using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mta.Ingress.Milter;

/// <summary>The packets the MTA sends a milter, each at its SMTP moment (Postfix's milter8.c event by event).</summary>
public static class MilterCommands
{
    /// <summary>SMFIC_OPTNEG: the version (6 unless configured lower), the actions allowed and the protocol steps offered.</summary>
    public static byte[] OptionNegotiation(MilterActions actions, MilterSteps steps, uint version = MilterProtocol.Version)
    {
        var data = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(data, version);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), (uint)actions);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(8), (uint)steps);
        return Packet(MilterCommand.OptionNegotiation, data);
    }

    /// <summary>SMFIC_CONNECT: the client's name, its address family ('4', '6', or 'U' unknown), port and address.</summary>
    public static byte[] Connect(string hostname, IPAddress? address, int port)
    {
        if (address is null) return Packet(MilterCommand.Connect, [.. Text(hostname), (byte)'U']);
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        var family = address.AddressFamily == AddressFamily.InterNetworkV6 ? (byte)'6' : (byte)'4';
        var portOctets = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(portOctets, (ushort)port);
        return Packet(MilterCommand.Connect, [.. Text(hostname), family, .. portOctets, .. Text(address.ToString())]);
    }

    /// <summary>SMFIC_HELO: the name the client gave.</summary>
    public static byte[] Helo(string name) => Packet(MilterCommand.Helo, Text(name));

    /// <summary>SMFIC_MAIL: <c>&lt;sender&gt;</c> then each ESMTP parameter, as Postfix sends them.</summary>
    public static byte[] Mail(string sender, IEnumerable<string> parameters) => Packet(MilterCommand.Mail, Texts(["<" + sender + ">", .. parameters]));

    /// <summary>SMFIC_RCPT: <c>&lt;recipient&gt;</c> then each ESMTP parameter.</summary>
    public static byte[] Rcpt(string recipient, IEnumerable<string> parameters) => Packet(MilterCommand.Rcpt, Texts(["<" + recipient + ">", .. parameters]));

    /// <summary>SMFIC_MACRO: the macros for the event <paramref name="stage"/> that follows, name and value in turn.</summary>
    public static byte[] Macros(MilterCommand stage, IEnumerable<KeyValuePair<string, string>> macros)
        => Packet(MilterCommand.Macro, [(byte)stage, .. Texts(macros.SelectMany(m => new[] { m.Key, m.Value }))]);

    /// <summary>SMFIC_HEADER: one field's name and value.</summary>
    public static byte[] Header(string name, string value) => Packet(MilterCommand.Header, Texts([name, value]));

    /// <summary>SMFIC_BODY: one chunk of the body (at most <see cref="MilterProtocol.MaxData"/> octets).</summary>
    public static byte[] Body(ReadOnlySpan<byte> chunk)
        => chunk.Length <= MilterProtocol.MaxData ? MilterPacket.Encode((byte)MilterCommand.Body, chunk)
            : throw new ArgumentOutOfRangeException(nameof(chunk), $"a body chunk is at most {MilterProtocol.MaxData} octets");

    /// <summary>SMFIC_UNKNOWN: the command line the MTA did not know.</summary>
    public static byte[] Unknown(string line) => Packet(MilterCommand.Unknown, Text(line));

    /// <summary>An event without data: DATA, end of header, end of message, abort, quit.</summary>
    public static byte[] Event(MilterCommand command) => command is MilterCommand.Data or MilterCommand.EndOfHeader
        or MilterCommand.EndOfMessage or MilterCommand.Abort or MilterCommand.Quit or MilterCommand.QuitNewConnection
        ? Packet(command, [])
        : throw new ArgumentException($"{command} carries data", nameof(command));

    private static byte[] Packet(MilterCommand command, byte[] data) => MilterPacket.Encode((byte)command, data);

    private static byte[] Text(string s) => [.. Encoding.UTF8.GetBytes(s), 0];

    private static byte[] Texts(IEnumerable<string> items) => [.. items.SelectMany(Text)];
}

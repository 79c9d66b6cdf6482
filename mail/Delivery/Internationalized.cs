using Mta.Mail.Contracts;

namespace Mta.Mail.Delivery;

/// <summary>RFC 6531: whether a message flagged SMTPUTF8 really needs a server that offers SMTPUTF8.</summary>
public static class Internationalized
{
    /// <summary>
    /// True for a non-ASCII envelope address or header byte. Postfix likewise delivers an SMTPUTF8-flagged
    /// message that turns out to be ASCII to any server; 8-bit bodies alone need only 8BITMIME.
    /// </summary>
    public static bool Needs(DeliveryJob job, ReadOnlySpan<byte> message)
    {
        if (!job.Sender.All(char.IsAscii) || job.Recipients.Any(r => !r.All(char.IsAscii))) return true;
        var end = message.IndexOf("\r\n\r\n"u8);
        var header = end < 0 ? message : message[..end];
        return header.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0;
    }
}

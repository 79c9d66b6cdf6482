namespace Mta.Mail.Delivery;

/// <summary>
/// What goes out in DATA has CRLF line ends only (RFC 5321 §2.3.8): a bare CR or LF is the stuff of SMTP smuggling
/// (a next hop that takes <c>&lt;CR&gt;.&lt;CR&gt;&lt;LF&gt;</c> or <c>&lt;LF&gt;.&lt;LF&gt;</c> for the end of data reads what follows
/// as commands), and dot-stuffing acts only after LF. The ingress refuses or normalizes such input; this holds
/// whatever a queue message carries.
/// </summary>
public static class LineEndings
{
    /// <summary>Whether every CR and LF in <paramref name="message"/> is part of a CRLF.</summary>
    public static bool OnlyCrlf(ReadOnlySpan<byte> message)
    {
        for (var i = message.IndexOfAny((byte)'\r', (byte)'\n'); i >= 0;)
        {
            if (message[i] == (byte)'\n' || i + 1 >= message.Length || message[i + 1] != (byte)'\n') return false;
            var next = message[(i + 2)..].IndexOfAny((byte)'\r', (byte)'\n');
            i = next < 0 ? -1 : i + 2 + next;
        }
        return true;
    }

    /// <summary><paramref name="message"/> with each bare CR and each bare LF turned into CRLF.</summary>
    public static byte[] ToCrlf(ReadOnlySpan<byte> message)
    {
        var output = new List<byte>(message.Length + 64);
        for (var i = 0; i < message.Length; i++)
        {
            var b = message[i];
            if (b == (byte)'\r')
            {
                output.Add((byte)'\r');
                output.Add((byte)'\n');
                if (i + 1 < message.Length && message[i + 1] == (byte)'\n') i++;
            }
            else if (b == (byte)'\n')
            {
                output.Add((byte)'\r');
                output.Add((byte)'\n');
            }
            else output.Add(b);
        }
        return output.ToArray();
    }
}

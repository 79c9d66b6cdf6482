using System.Text;

namespace Mta.Mail.Contracts;

/// <summary>RFC 3461 §4 xtext, the encoding of ENVID and ORCPT values: <c>+XX</c> for a byte in hex.</summary>
public static class Xtext
{
    /// <summary>Encodes text (as UTF-8) for an ENVID or ORCPT parameter: '+', '=', controls, spaces and non-ASCII as <c>+XX</c>.</summary>
    public static string Encode(string text)
    {
        var result = new StringBuilder(text.Length);
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            if (b is >= (byte)'!' and <= (byte)'~' and not (byte)'+' and not (byte)'=') result.Append((char)b);
            else result.Append('+').Append(b.ToString("X2"));
        }
        return result.ToString();
    }

    /// <summary>The decoded text, or null when the value is not valid xtext or decodes to control characters.</summary>
    public static string? Decode(string xtext)
    {
        var bytes = new List<byte>(xtext.Length);
        for (var i = 0; i < xtext.Length; i++)
        {
            var c = xtext[i];
            if (c == '+')
            {
                if (i + 2 >= xtext.Length || !byte.TryParse(xtext.AsSpan(i + 1, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b))
                    return null;
                bytes.Add(b);
                i += 2;
            }
            else if (c is >= '!' and <= '~' and not '=')
            {
                bytes.Add((byte)c);
            }
            else
            {
                return null;
            }
        }
        var text = Encoding.UTF8.GetString(bytes.ToArray());
        // The value goes into a report header: no line breaks or other controls.
        return text.Any(char.IsControl) ? null : text;
    }
}

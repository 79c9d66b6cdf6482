using System.Text;

namespace Mta.Ingress.Milter;

/// <summary>One header field as it is in the message: its name, and its value exactly as after the colon (folding kept, no final CRLF).</summary>
/// <param name="Name">The field name.</param>
/// <param name="Value">Everything after the colon, up to the field's last CRLF.</param>
public sealed record HeaderField(string Name, string Value);

/// <summary>
/// A message's header block as milters see and change it: the fields in order, what is sent for each (Sendmail's
/// manner: one leading space eaten, folded lines joined by LF), and the header modifications applied in order
/// (SMFIR_ADDHEADER appends, SMFIR_INSHEADER inserts at an index, SMFIR_CHGHEADER changes or deletes the n-th field
/// of a name and adds one when there is no n-th).
/// </summary>
public sealed class MilterHeader
{
    private readonly List<HeaderField> _fields;

    private MilterHeader(List<HeaderField> fields) => _fields = fields;

    /// <summary>The fields, in order.</summary>
    public IReadOnlyList<HeaderField> Fields => _fields;

    /// <summary>
    /// Splits a header block (the message's octets up to the empty line) into fields; null when the first line is not
    /// a field (the message has no header: all of it is body). A later line that is neither a field nor a continuation
    /// stays with the field before it, so nothing of the message is lost when the header is written again.
    /// </summary>
    public static MilterHeader? Parse(ReadOnlySpan<byte> block)
    {
        var fields = new List<HeaderField>();
        foreach (var line in Encoding.UTF8.GetString(block).Split("\r\n"))
        {
            if (line.Length == 0) continue;
            var colon = line.IndexOf(':');
            var name = colon > 0 ? line[..colon].TrimEnd(' ', '\t') : "";
            if (name.Length > 0 && name.All(c => c is > ' ' and < (char)127) && line[0] is not (' ' or '\t'))
                fields.Add(new HeaderField(name, line[(colon + 1)..]));
            else if (fields.Count > 0)
                fields[^1] = fields[^1] with { Value = fields[^1].Value + "\r\n" + line };
            else
                return null;
        }
        return new MilterHeader(fields);
    }

    /// <summary>An empty header, for a message that has none.</summary>
    public static MilterHeader Empty() => new([]);

    /// <summary>
    /// Where a message's header block ends and its body starts: the header is the octets before the first empty line,
    /// the body what follows it. A message that starts with an empty line has no header; one without any has no body.
    /// </summary>
    public static (int HeaderLength, int BodyOffset) Split(ReadOnlySpan<byte> start, long messageLength)
    {
        if (start.StartsWith("\r\n"u8)) return (0, 2);
        var end = start.IndexOf("\r\n\r\n"u8);
        return end >= 0 ? (end + 2, end + 4) : ((int)Math.Min(start.Length, messageLength), (int)Math.Min(start.Length, messageLength));
    }

    /// <summary>What SMFIC_HEADER carries as the value: one leading space eaten unless the milter asked for it, lines joined by LF.</summary>
    public static string Sent(HeaderField field, bool leadingSpace)
    {
        var value = !leadingSpace && field.Value.StartsWith(' ') ? field.Value[1..] : field.Value;
        return value.Replace("\r\n", "\n");
    }

    /// <summary>Applies one header modification from a milter.</summary>
    public void Apply(MilterReply.HeaderChange change, bool leadingSpace)
    {
        var value = Stored(change.Value, leadingSpace);
        switch (change.Code)
        {
            case MilterReplyCode.AddHeader:
                _fields.Add(new HeaderField(change.Name, value));
                break;
            case MilterReplyCode.InsertHeader:
                _fields.Insert(Math.Min(change.Index, _fields.Count), new HeaderField(change.Name, value));
                break;
            case MilterReplyCode.ChangeHeader:
                Change(change.Name, Math.Max(change.Index, 1), change.Value.Length == 0 ? null : value);
                break;
        }
    }

    private void Change(string name, int occurrence, string? value)
    {
        var seen = 0;
        for (var i = 0; i < _fields.Count; i++)
        {
            if (!_fields[i].Name.Equals(name, StringComparison.OrdinalIgnoreCase) || ++seen < occurrence) continue;
            if (value is null) _fields.RemoveAt(i);
            else _fields[i] = _fields[i] with { Value = value };
            return;
        }
        if (value is not null) _fields.Add(new HeaderField(name, value));
    }

    /// <summary>
    /// A value from a milter as it goes in the message: a space after the colon unless the milter sends its own, line
    /// breaks as CRLF, and each continuation line starting with white space (a bare line would start a new field).
    /// </summary>
    private static string Stored(string value, bool leadingSpace)
    {
        var lines = value.Replace("\r\n", "\n").Split('\n');
        for (var i = 1; i < lines.Length; i++)
            if (lines[i].Length == 0 || lines[i][0] is not (' ' or '\t')) lines[i] = "\t" + lines[i];
        var joined = string.Join("\r\n", lines);
        return leadingSpace ? joined : " " + joined;
    }

    /// <summary>The header block as octets, each field ended by CRLF (without the empty line that ends the block).</summary>
    public byte[] ToBytes()
    {
        var sb = new StringBuilder();
        foreach (var field in _fields) sb.Append(field.Name).Append(':').Append(field.Value).Append("\r\n");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }
}

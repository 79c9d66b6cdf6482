using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mta.Mail.Contracts;

/// <summary>
/// The JSON form of message bytes carried in a queue message: base64, as for any byte array, and for more than
/// <see cref="CompressAbove"/> octets deflated first and marked <c>deflate:</c> (a colon never occurs in base64), so that
/// a message of up to 48 KiB of mail text fits a 64 KiB queue message even after the queue's own base64. Plain base64
/// is always read, so messages queued before compression existed still parse.
/// </summary>
public sealed class MessageBytesJson : JsonConverter<byte[]>
{
    /// <summary>Smaller contents are written as plain base64: compressing them would save little and cost CPU.</summary>
    public const int CompressAbove = 16 * 1024;

    /// <summary>The most a deflated content may grow to when read (a queue message holds at most this much mail).</summary>
    public const int MaxInflated = 1024 * 1024;

    private const string Deflated = "deflate:";

    /// <inheritdoc />
    public override byte[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String) throw new JsonException("message content is not a string");
        // Written unescaped (see Write); read whatever a producer wrote.
        var raw = reader.HasValueSequence || reader.ValueIsEscaped ? System.Text.Encoding.UTF8.GetBytes(reader.GetString()!) : reader.ValueSpan;
        if (!raw.StartsWith("deflate:"u8)) return reader.GetBytesFromBase64();
        try
        {
            return Inflate(Convert.FromBase64String(System.Text.Encoding.ASCII.GetString(raw[Deflated.Length..])));
        }
        catch (Exception e) when (e is FormatException or InvalidDataException)
        {
            throw new JsonException($"deflated message content is damaged: {e.Message}", e);
        }
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, byte[] value, JsonSerializerOptions options)
    {
        // Raw, because the default encoder would write each '+' of the base64 as \u002B (six octets instead of one).
        if (value.Length > CompressAbove && Deflate(value) is { } smaller)
            writer.WriteRawValue("\"" + Deflated + Convert.ToBase64String(smaller) + "\"", skipInputValidation: true);
        else
            writer.WriteBase64StringValue(value);
    }

    /// <summary>The deflated bytes, or null when they are not smaller (already compressed attachments).</summary>
    private static byte[]? Deflate(byte[] value)
    {
        using var output = new MemoryStream(value.Length / 2);
        // Level 2, not Fastest: zlib-ng's level 1 uses only the fixed Huffman code, which cannot shrink base64 text
        // (attachments) at all; level 2 builds its own code and takes it to about three quarters.
        using (var deflate = new DeflateStream(output, new ZLibCompressionOptions { CompressionLevel = 2 }, leaveOpen: true))
            deflate.Write(value);
        return output.Length < value.Length ? output.ToArray() : null;
    }

    private static byte[] Inflate(byte[] deflated)
    {
        using var input = new DeflateStream(new MemoryStream(deflated, writable: false), CompressionMode.Decompress);
        using var output = new MemoryStream(deflated.Length * 3);
        var buffer = new byte[16 * 1024];
        int n;
        while ((n = input.Read(buffer)) > 0)
        {
            if (output.Length + n > MaxInflated) throw new JsonException($"deflated message content larger than {MaxInflated} octets");
            output.Write(buffer, 0, n);
        }
        return output.ToArray();
    }
}

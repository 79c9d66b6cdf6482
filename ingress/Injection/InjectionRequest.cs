using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mta.Ingress.Injection;

/// <summary>
/// A <c>POST /api/inject/v1</c> body, in the shape of KumoMTA's injection API: one envelope sender, many recipients with
/// their own substitution values, and one content — a whole RFC 5322 message (a JSON string) or its parts (an object)
/// — whose text may use Liquid substitutions (<c>{{ name }}</c>).
/// </summary>
public sealed class InjectionRequest
{
    /// <summary>The envelope sender (MAIL FROM); bounces go there. Its domain must be one of the token's.</summary>
    [JsonPropertyName("envelope_sender")] public string? EnvelopeSender { get; set; }

    /// <summary>One generated message per recipient.</summary>
    [JsonPropertyName("recipients")] public List<InjectionRecipient>? Recipients { get; set; }

    /// <summary>Values every recipient's message may use; a recipient's own values win.</summary>
    [JsonPropertyName("substitutions")] public Dictionary<string, JsonElement>? Substitutions { get; set; }

    /// <summary>A JSON string (the whole message) or an object (<see cref="InjectionParts"/>).</summary>
    [JsonPropertyName("content")] public JsonElement Content { get; set; }

    /// <summary>Delivery status notifications asked for (RFC 3461), as MAIL's RET and ENVID and RCPT's NOTIFY would.</summary>
    [JsonPropertyName("dsn")] public InjectionDsn? Dsn { get; set; }

    /// <summary>Tags for every message of the request (a campaign, say), carried to the delivery log; the token's tenant is added as <c>tenant</c>.</summary>
    [JsonPropertyName("tags")] public Dictionary<string, string>? Tags { get; set; }
}

/// <summary>The DSN options of a request (RFC 3461).</summary>
public sealed class InjectionDsn
{
    /// <summary><c>FULL</c> or <c>HDRS</c>: what a failure report returns of the message (MAIL's RET).</summary>
    [JsonPropertyName("ret")] public string? Ret { get; set; }

    /// <summary>The sender's id for the request, returned in reports as Original-Envelope-Id (MAIL's ENVID).</summary>
    [JsonPropertyName("envid")] public string? EnvelopeId { get; set; }

    /// <summary><c>NEVER</c>, or a comma list of <c>SUCCESS</c>, <c>FAILURE</c>, <c>DELAY</c> (RCPT's NOTIFY), for every recipient.</summary>
    [JsonPropertyName("notify")] public string? Notify { get; set; }
}

/// <summary>One recipient of an injection request.</summary>
public sealed class InjectionRecipient
{
    /// <summary>The recipient's address (RCPT TO).</summary>
    [JsonPropertyName("email")] public string? Email { get; set; }

    /// <summary>A display name for the To field of a message built from parts.</summary>
    [JsonPropertyName("name")] public string? Name { get; set; }

    /// <summary>This recipient's substitution values.</summary>
    [JsonPropertyName("substitutions")] public Dictionary<string, JsonElement>? Substitutions { get; set; }
}

/// <summary>A message given by its parts, built with MimeKit.</summary>
public sealed class InjectionParts
{
    /// <summary>The From field.</summary>
    [JsonPropertyName("from")] public InjectionMailbox? From { get; set; }

    /// <summary>The Subject field (a template).</summary>
    [JsonPropertyName("subject")] public string? Subject { get; set; }

    /// <summary>The plain-text body (a template).</summary>
    [JsonPropertyName("text_body")] public string? TextBody { get; set; }

    /// <summary>The HTML body (a template; substituted values are HTML-escaped).</summary>
    [JsonPropertyName("html_body")] public string? HtmlBody { get; set; }

    /// <summary>More header fields (values are templates).</summary>
    [JsonPropertyName("headers")] public Dictionary<string, string>? Headers { get; set; }

    /// <summary>Files attached to every message (not templates).</summary>
    [JsonPropertyName("attachments")] public List<InjectionAttachment>? Attachments { get; set; }
}

/// <summary>An attachment, its content in base64.</summary>
public sealed class InjectionAttachment
{
    /// <summary>The file name shown to the reader.</summary>
    [JsonPropertyName("file_name")] public string? FileName { get; set; }

    /// <summary>The MIME type, <c>application/pdf</c>; <c>application/octet-stream</c> when not given.</summary>
    [JsonPropertyName("content_type")] public string? ContentType { get; set; }

    /// <summary>The content, base64-encoded.</summary>
    [JsonPropertyName("data")] public string? Data { get; set; }

    /// <summary>A Content-ID: the part is inline, for the HTML body to show as <c>cid:</c>.</summary>
    [JsonPropertyName("content_id")] public string? ContentId { get; set; }
}

/// <summary>An address with an optional display name.</summary>
public sealed class InjectionMailbox
{
    /// <summary>The address.</summary>
    [JsonPropertyName("email")] public string? Email { get; set; }

    /// <summary>The display name.</summary>
    [JsonPropertyName("name")] public string? Name { get; set; }
}

using System.Text.Encodings.Web;
using System.Text.Json;
using Fluid;
using MimeKit;
using Mta.Mail.Routing;

namespace Mta.Ingress.Injection;

/// <summary>What is wrong with a request, at a JSON pointer into its body (RFC 9457's field naming).</summary>
/// <param name="Pointer">Where: <c>/recipients/3/email</c>.</param>
/// <param name="Detail">What.</param>
/// <param name="Status">The HTTP status it gets: 422, or 413 for what is too large.</param>
public sealed record InjectionProblem(string Pointer, string Detail, int Status = 422);

/// <summary>
/// Turns one injection request into one message per recipient: checks the envelope and content, parses the templates
/// once (Fluid, Liquid syntax, strict: a field no substitution supplies refuses the request and names it), then renders
/// each recipient's message — raw RFC 5322 text, or a MimeKit message built from parts. Decides and builds; queueing is
/// the endpoint's.
/// </summary>
public sealed class InjectionComposer
{
    private static readonly FluidParser Parser = new();
    // Strict: a field or filter nobody defined is an error, never an empty string in a sent message. Bounded: a
    // template's loops and output cannot run away (the message size limit caps what one render may produce).
    private readonly TemplateOptions _options;
    private readonly long _sizeLimit;

    private readonly InjectionRequest _request;
    private readonly IFluidTemplate? _raw;
    private readonly InjectionParts? _parts;
    private readonly IFluidTemplate? _subject, _text, _html;
    private readonly List<(string Name, IFluidTemplate Value)> _headers = [];
    private readonly List<(InjectionAttachment Part, byte[] Data)> _attachments;

    private InjectionComposer(InjectionRequest request, IFluidTemplate? raw, InjectionParts? parts, Dictionary<string, IFluidTemplate?> templates,
        List<(InjectionAttachment, byte[])> attachments, long sizeLimit)
    {
        (_request, _raw, _parts, _attachments, _sizeLimit) = (request, raw, parts, attachments, sizeLimit);
        _options = new TemplateOptionsBuilder().WithStrictVariables(true).WithStrictFilters(true).WithMaxSteps(100_000)
            .WithMaxOutputSize((int)Math.Min(sizeLimit, int.MaxValue)).Build();
        (_subject, _text, _html) = (templates.GetValueOrDefault("subject"), templates.GetValueOrDefault("text_body"), templates.GetValueOrDefault("html_body"));
        foreach (var (name, template) in templates.Where(t => t.Key.StartsWith("headers/", StringComparison.Ordinal)))
            _headers.Add((name["headers/".Length..], template!));
    }

    /// <summary>The recipients' addresses, in order.</summary>
    public IReadOnlyList<string> Recipients => _request.Recipients!.Select(r => r.Email!).ToList();

    /// <summary>The envelope sender.</summary>
    public string Sender => _request.EnvelopeSender!;

    /// <summary>The request as sent.</summary>
    public InjectionRequest Request => _request;

    /// <summary>Checks <paramref name="request"/> for <paramref name="client"/>: the composer, or every problem found.</summary>
    public static (InjectionComposer? Composer, IReadOnlyList<InjectionProblem> Problems) Prepare(InjectionRequest request, InjectionClient client,
        int maxRecipients, long sizeLimit)
    {
        var problems = new List<InjectionProblem>();
        CheckEnvelope(request, client, maxRecipients, problems);
        InjectionMetadata.Check(request, problems);
        var templates = new Dictionary<string, IFluidTemplate?>();
        var attachments = new List<(InjectionAttachment, byte[])>();
        IFluidTemplate? raw = null;
        InjectionParts? parts = null;
        switch (request.Content.ValueKind)
        {
            case JsonValueKind.String:
                raw = Parse(request.Content.GetString()!, "/content", problems);
                break;
            case JsonValueKind.Object:
                parts = ReadParts(request.Content, problems);
                if (parts is not null) ParseParts(parts, templates, problems);
                if (parts is not null) Decode(parts, attachments, problems);
                break;
            default:
                problems.Add(new("/content", "missing: a whole message (a string) or its parts (an object)"));
                break;
        }
        return problems.Count > 0 ? (null, problems) : (new InjectionComposer(request, raw, parts, templates, attachments, sizeLimit), problems);
    }

    private static void CheckEnvelope(InjectionRequest request, InjectionClient client, int maxRecipients, List<InjectionProblem> problems)
    {
        if (!IsMailbox(request.EnvelopeSender))
            problems.Add(new("/envelope_sender", "missing or not an address (local@domain)"));
        else if (!client.MaySendAs(request.EnvelopeSender!))
            problems.Add(new("/envelope_sender", $"the token may not send from {Address.DomainOf(request.EnvelopeSender!)}"));
        if (request.Recipients is not { Count: > 0 } recipients)
        {
            problems.Add(new("/recipients", "missing or empty"));
            return;
        }
        if (recipients.Count > maxRecipients)
            problems.Add(new("/recipients", $"{recipients.Count} recipients, more than the {maxRecipients} a request may have"));
        for (var i = 0; i < recipients.Count && problems.Count < 100; i++)
            if (!IsMailbox(recipients[i]?.Email))
                problems.Add(new($"/recipients/{i}/email", "missing or not an address (local@domain)"));
    }

    // An address the SMTP side would take in MAIL or RCPT: local@domain, no spaces, no angle brackets, a valid domain.
    private static bool IsMailbox(string? address)
        => address is { Length: > 2 and <= 254 } && !address.Any(c => char.IsWhiteSpace(c) || c is '<' or '>' || char.IsControl(c))
           && address.LastIndexOf('@') is > 0 and var at && at < address.Length - 1 && Address.WithAsciiDomain(address) is not null;

    private static InjectionParts? ReadParts(JsonElement content, List<InjectionProblem> problems)
    {
        try { return content.Deserialize<InjectionParts>(); }
        catch (JsonException e) { problems.Add(new("/content" + Pointer(e.Path), "not the expected type: " + e.Message)); return null; }
    }

    /// <summary>The JSON pointer (RFC 6901) for a System.Text.Json path such as <c>$.recipients[2].email</c>.</summary>
    internal static string Pointer(string? jsonPath) => string.IsNullOrEmpty(jsonPath) || jsonPath == "$" ? ""
        : "/" + jsonPath.TrimStart('$', '.').Replace("[", ".").Replace("]", "").Replace('.', '/');

    private static void ParseParts(InjectionParts parts, Dictionary<string, IFluidTemplate?> templates, List<InjectionProblem> problems)
    {
        if (!IsMailbox(parts.From?.Email)) problems.Add(new("/content/from/email", "missing or not an address (local@domain)"));
        if (parts.TextBody is null && parts.HtmlBody is null) problems.Add(new("/content/text_body", "a text_body or an html_body is needed"));
        foreach (var (name, text) in new[] { ("subject", parts.Subject), ("text_body", parts.TextBody), ("html_body", parts.HtmlBody) })
            if (text is not null) templates[name] = Parse(text, "/content/" + name, problems);
        foreach (var (name, value) in parts.Headers ?? [])
        {
            if (name.Length == 0 || name.Any(c => c is <= ' ' or >= (char)127 or ':'))
                problems.Add(new($"/content/headers/{name}", "not a header field name"));
            else if (name.Equals("From", StringComparison.OrdinalIgnoreCase) || name.Equals("To", StringComparison.OrdinalIgnoreCase))
                problems.Add(new($"/content/headers/{name}", "set by from and the recipient, not here"));
            else templates["headers/" + name] = Parse(value, $"/content/headers/{name}", problems);
        }
    }

    private static void Decode(InjectionParts parts, List<(InjectionAttachment, byte[])> attachments, List<InjectionProblem> problems)
    {
        for (var i = 0; i < (parts.Attachments?.Count ?? 0); i++)
        {
            var a = parts.Attachments![i];
            var at = $"/content/attachments/{i}";
            if (a?.FileName is not { Length: > 0 and <= 255 } name || name.Any(char.IsControl))
                problems.Add(new(at + "/file_name", "missing, or not a file name (1 to 255 characters, no control characters)"));
            if (a?.ContentType is { } type && !ContentType.TryParse(type, out _))
                problems.Add(new(at + "/content_type", "not a MIME type (type/subtype)"));
            if (a?.ContentId is { } id && (id.Length is 0 or > 250 || id.Any(c => c is <= ' ' or > '~' or '<' or '>')))
                problems.Add(new(at + "/content_id", "1 to 250 printable ASCII characters, no spaces or angle brackets"));
            var data = new byte[(a?.Data?.Length ?? 0) * 3 / 4 + 3];
            if (a?.Data is null || !Convert.TryFromBase64String(a.Data, data, out var length))
                problems.Add(new(at + "/data", "missing or not base64"));
            else if (a is not null) attachments.Add((a, data[..length]));
        }
    }

    private static IFluidTemplate? Parse(string source, string pointer, List<InjectionProblem> problems)
    {
        if (Parser.TryParse(source, out var template, out var error)) return template;
        problems.Add(new(pointer, "template syntax: " + error));
        return null;
    }

    /// <summary>
    /// The octets of recipient <paramref name="index"/>'s message, with CRLF line ends and without the Date and Message-ID
    /// that <see cref="Stamp"/> gives a message built from parts; or the problem that stops it (a template field its
    /// substitutions do not supply, a message over the size limit). A raw message is not parsed here: cleanup reads it
    /// as it reads SMTP mail.
    /// </summary>
    public (byte[]? Octets, InjectionProblem? Problem) Render(int index)
    {
        var recipient = _request.Recipients![index];
        var context = new TemplateContext(_options);
        foreach (var (name, value) in Values(recipient)) context.SetValue(name, value ?? "");
        try
        {
            if (_raw is not null) return (RawOctets(context), null);
            using var buffer = new MemoryStream();
            FromParts(recipient, context).WriteTo(InjectionPlan.Crlf, buffer);
            return (buffer.ToArray(), null);
        }
        catch (Exception e) when ((e is FluidException or InvalidOperationException) && e.Message.Contains("output size", StringComparison.Ordinal))
        {
            // Fluid stops a render at the message size limit: what it would have made is too large anyway.
            return (null, new($"/recipients/{index}", $"larger than the message size limit ({_sizeLimit} octets)", 413));
        }
        catch (Exception e) when (e is FluidException or InvalidOperationException)
        {
            return (null, new($"/recipients/{index}/substitutions", e.Message));
        }
    }

    /// <summary>Recipient <paramref name="index"/>'s message as MimeKit reads it (for tests and tools), or the problem.</summary>
    public (MimeMessage? Message, InjectionProblem? Problem) Compose(int index)
    {
        var (octets, problem) = Render(index);
        return octets is null ? (null, problem) : (MimeMessage.Load(new MemoryStream(octets)), null);
    }

    /// <summary>
    /// The header lines that go before a message built from parts: its Date (when the request began) and Message-ID
    /// (from its queue id), so a retried request makes the same octets; none for a raw message (cleanup adds what is
    /// missing). Apart from <see cref="Render"/>, so that messages equal but for these are found equal.
    /// </summary>
    public byte[] Stamp(DateTimeOffset started, string queueId) => _parts is null ? []
        : System.Text.Encoding.ASCII.GetBytes($"Date: {MimeKit.Utils.DateUtils.FormatDate(started)}\r\nMessage-ID: <{queueId}@{Address.DomainOf(_parts.From!.Email!)}>\r\n");

    private IEnumerable<(string, object?)> Values(InjectionRecipient recipient)
    {
        var values = new Dictionary<string, JsonElement>(_request.Substitutions ?? [], StringComparer.Ordinal);
        foreach (var (name, value) in recipient.Substitutions ?? []) values[name] = value;
        return values.Select(kv => (kv.Key, Plain(kv.Value)));
    }

    // Substitution values as Liquid sees them: strings, numbers and booleans; anything else as its JSON text.
    private static object? Plain(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Number => value.TryGetInt64(out var n) ? n : value.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null => null,
        _ => value.GetRawText(),
    };

    // The rendered text in UTF-8, its line ends made CRLF (a JSON string may hold bare LFs), ending in a line end.
    private byte[] RawOctets(TemplateContext context)
    {
        var octets = System.Text.Encoding.UTF8.GetBytes(_raw!.Render(context, NullEncoder.Default));
        if (!Mta.Mail.Delivery.LineEndings.OnlyCrlf(octets)) octets = Mta.Mail.Delivery.LineEndings.ToCrlf(octets);
        return octets.AsSpan().EndsWith("\r\n"u8) ? octets : [.. octets, (byte)'\r', (byte)'\n'];
    }

    private MimeMessage FromParts(InjectionRecipient recipient, TemplateContext context)
    {
        var message = new MimeMessage();
        // MimeKit gives a new message a random Message-ID and the time: Stamp sets both, from the queue id and the start.
        message.Headers.Remove(HeaderId.MessageId);
        message.Headers.Remove(HeaderId.Date);
        message.From.Add(new MailboxAddress(_parts!.From!.Name ?? "", _parts.From.Email!));
        message.To.Add(new MailboxAddress(recipient.Name ?? "", recipient.Email!));
        if (_subject is not null) message.Subject = _subject.Render(context, NullEncoder.Default);
        foreach (var (name, value) in _headers) message.Headers.Add(name, value.Render(context, NullEncoder.Default));
        var body = new BodyBuilder
        {
            TextBody = _text?.Render(context, NullEncoder.Default),
            HtmlBody = _html?.Render(context, HtmlEncoder.Default), // values are data, not markup
        };
        foreach (var (part, data) in _attachments)
        {
            var type = part.ContentType is { } t ? ContentType.Parse(t) : new ContentType("application", "octet-stream");
            var added = part.ContentId is null ? body.Attachments.Add(part.FileName!, data, type) : body.LinkedResources.Add(part.FileName!, data, type);
            if (part.ContentId is not null) added.ContentId = part.ContentId;
        }
        message.Body = body.ToMessageBody();
        return message;
    }
}

using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using Mta.Mail.Configuration;

namespace Mta.Mail.Cleanup;

/// <summary>
/// The header and body checks (<c>Mta:HeaderChecksFile</c>, <c>Mta:BodyChecksFile</c>) applied to one message, with
/// Postfix's log line for each match. Used twice: by the ingress at the end of DATA, so a REJECT is an SMTP refusal
/// and never a bounce to a sender who may be forged; and by cleanup, which acts on everything else (HOLD, WARN, IGNORE).
/// </summary>
public sealed class ContentInspector
{
    private readonly ContentChecks _headerChecks;
    private readonly ContentChecks _bodyChecks;
    private readonly ILogger<ContentInspector> _log;

    /// <summary>The body checks see at most this many bytes of a body (Postfix <c>body_checks_size_limit</c>).</summary>
    public int BodyLimit { get; }

    /// <summary>Loads the checks files (reloaded when they change; a broken one stops the start).</summary>
    public ContentInspector(IOptions<MtaOptions> options, ILogger<ContentInspector> log)
    {
        _log = log;
        void Warn(string e) => log.LogWarning("warning: checks file changed but could not be read, the previous version stays in use: {Error}", e);
        _headerChecks = ContentChecks.Load(options.Value.HeaderChecksFile, allowIgnore: true, Warn);
        _bodyChecks = ContentChecks.Load(options.Value.BodyChecksFile, allowIgnore: false, Warn);
        BodyLimit = options.Value.BodyChecksSizeLimit;
    }

    /// <summary>True when header checks are configured.</summary>
    public bool HeaderChecks => _headerChecks.Any;

    /// <summary>True when body checks are configured.</summary>
    public bool BodyChecks => _bodyChecks.Any;

    /// <summary>
    /// Header checks on each logical header line (<c>Name: value</c>, unfolded). Returns the deciding match: the first
    /// REJECT or DISCARD, else the first HOLD. IGNORE removes the line; every match is logged (checks run once, in cleanup).
    /// </summary>
    public CheckMatch? InspectHeader(string id, HeaderList headers, string who, CheckBudget? budget = null)
    {
        if (!_headerChecks.Any) return null;
        budget ??= new CheckBudget();
        CheckMatch? hold = null;
        foreach (var h in headers.ToList())
        {
            var text = h.Field + ": " + Header.Unfold(Encoding.UTF8.GetString(h.RawValue)).Trim();
            var match = _headerChecks.Match(text, budget);
            if (match is null || match.Action == CheckAction.Dunno) continue;
            Log(id, match, "header " + text, who);
            switch (match.Action)
            {
                case CheckAction.Ignore: headers.Remove(h); break;
                case CheckAction.Hold: hold ??= match; break;
                case CheckAction.Reject or CheckAction.Discard: return match;
            }
        }
        return hold;
    }

    /// <summary>Body checks on each line of the body's first <see cref="BodyLimit"/> bytes; the deciding match as for the header.</summary>
    public CheckMatch? InspectBody(string id, ReadOnlySpan<byte> body, string who, CheckBudget? budget = null)
    {
        if (!_bodyChecks.Any) return null;
        budget ??= new CheckBudget();
        CheckMatch? hold = null;
        foreach (var line in Encoding.UTF8.GetString(body[..Math.Min(body.Length, BodyLimit)]).Split("\r\n"))
        {
            var match = _bodyChecks.Match(line, budget);
            if (match is null || match.Action == CheckAction.Dunno) continue;
            Log(id, match, "body " + line, who);
            if (match.Action is CheckAction.Reject or CheckAction.Discard) return match;
            if (match.Action == CheckAction.Hold) hold ??= match;
        }
        return hold;
    }

    private void Log(string id, CheckMatch match, string what, string who)
    {
        // Postfix: "cleanup: ID: reject: header Subject: ... from host[addr]; from=<> to=<> proto=ESMTP helo=<>: 5.7.1 text".
        var action = match.Action.ToString().ToLowerInvariant();
        var shown = what.Length > 200 ? what[..200] + "..." : what;
        _log.LogInformation("{QueueId}: {Action}: {What} {Who}: {Text} ({Rule})",
            id, action == "warn" ? "warning" : action, shown, who, match.Text.Length > 0 ? match.Text : action, match.Where);
    }
}

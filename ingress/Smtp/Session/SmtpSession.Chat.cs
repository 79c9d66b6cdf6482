using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Mta.Ingress.Smtp;

// Replies, flushing, deadlines and the pipelining rules (Postfix's smtpd_chat.c and smtpd_forbid_unauth_pipelining).
public sealed partial class SmtpSession
{
    /// <summary>
    /// Sends the replies written so far, within the per-request timeout: a client that stops reading (its receive
    /// window full) cannot hold the session, whose write would otherwise wait for ever.
    /// </summary>
    private async Task FlushAsync(CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(TimeSpan.FromSeconds(options.TimeoutSeconds));
        await _output.FlushAsync(limit.Token);
    }

    /// <summary>
    /// How long the next read may take: the per-request timeout, and inside a message no later than the
    /// message's own deadline, which grows with the octets received at the minimum data rate
    /// (Postfix smtpd_min_data_rate with per-request deadlines), so a slow drip cannot hold a session forever.
    /// </summary>
    private TimeSpan ReadDeadline(bool midMessage, long received)
    {
        var perRead = TimeSpan.FromSeconds(options.TimeoutSeconds);
        if (!midMessage)
        {
            // Postfix's smtpd_per_record_deadline for commands: one command line in TimeoutSeconds, however it trickles in.
            _messageStarted = 0;
            if (_commandWaitStarted == 0) _commandWaitStarted = Environment.TickCount64;
            var rest = perRead - TimeSpan.FromMilliseconds(Environment.TickCount64 - _commandWaitStarted);
            return rest < TimeSpan.Zero ? TimeSpan.Zero : rest;
        }
        _commandWaitStarted = 0;
        if (options.MinDataRate <= 0) return perRead;
        if (_messageStarted == 0) _messageStarted = Environment.TickCount64;
        var allowed = TimeSpan.FromSeconds(options.TimeoutSeconds + (double)received / options.MinDataRate);
        var left = allowed - TimeSpan.FromMilliseconds(Environment.TickCount64 - _messageStarted);
        return left < TimeSpan.Zero ? TimeSpan.Zero : left < perRead ? left : perRead;
    }

    private long _messageStarted;

    /// <summary>When the command being waited for was first waited for: partial lines do not restart its clock.</summary>
    private long _commandWaitStarted;

    /// <summary>
    /// Postfix's smtpd_forbid_unauth_pipelining: more input already waiting after a command that must be answered
    /// first (or any command before EHLO offered PIPELINING) means the client does not read replies. Answers 554 and
    /// says the session ends. Replies are only sent when the buffer is used up, so nothing here can be a reaction to one.
    /// </summary>
    private bool Unsynchronized(ReadOnlySequence<byte> pending, string verb)
    {
        if (!options.ForbidUnauthPipelining || _user is not null || pending.Length == 0 || _quit) return false;
        if (_pipelining && !(Commands.TryGetValue(verb, out var command) && command.EndsGroup)) return false;
        var sample = Encoding.UTF8.GetString(pending.Slice(0, Math.Min(pending.Length, 100))).Split('\n')[0].TrimEnd('\r');
        log.LogInformation("improper command pipelining after {Verb} from [{Client}]: {Input}", verb, client, Sanitize(Loggable(verb, sample)));
        Reply("554 5.5.0 Error: SMTP protocol synchronization");
        return true;
    }

    /// <summary>A client that talks before the greeting is not waiting for the server: a bot (RFC 5321 §4.3.1).</summary>
    private async Task<bool> TalkedFirstAsync(CancellationToken stopping)
    {
        if (!options.ForbidUnauthPipelining || !_input.TryRead(out var early)) return false;
        var talked = early.Buffer.Length > 0;
        _input.AdvanceTo(early.Buffer.Start);
        if (!talked) return false;
        log.LogInformation("improper command pipelining after CONNECT from [{Client}]", client);
        Reply("554 5.5.0 Error: SMTP protocol synchronization");
        await FlushAsync(stopping);
        return true;
    }

    private void Error(string reply)
    {
        _errors++;
        Reply(reply);
    }

    private void Reply(params string[] lines)
    {
        if (metrics is not null && lines.Length > 0 && lines[0].Length > 0 && lines[0][0] is '4' or '5')
            metrics.Rejected(lines[0], _verb);
        foreach (var l in lines)
        {
            var bytes = Encoding.UTF8.GetBytes(l + "\r\n");
            _output.Write(bytes);
        }
    }

    /// <summary>Printable ASCII only, at most 255 characters: the HELO name ends up in a Received header.</summary>
    private static string Sanitize(string text)
    {
        var sb = new StringBuilder(Math.Min(text.Length, 255));
        foreach (var c in text)
        {
            if (sb.Length == 255) break;
            sb.Append(c is > ' ' and < (char)127 ? c : '?');
        }
        return sb.ToString();
    }
}

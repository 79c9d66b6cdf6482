using System.Text;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;
using Mta.Mail.Routing;

namespace Mta.Mail.Delivery;

/// <summary>
/// Postfix's local(8) in its simplest form: each recipient of a local domain gets the message
/// as one file in <c>{DataDirectory}/maildir/{user}/new</c>, written to <c>tmp</c> first and
/// renamed, so a reader never sees half a message.
/// </summary>
public sealed class MaildirDelivery(IOptions<MtaOptions> options)
{
    private readonly MtaOptions _options = options.Value;
    private static long _counter;

    /// <summary>Writes the message for each recipient.</summary>
    public async Task<IReadOnlyList<RecipientResult>> DeliverAsync(
        string queueId, string sender, IReadOnlyList<string> recipients, ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        var results = new List<RecipientResult>();
        foreach (var rcpt in recipients)
        {
            var local = Address.LocalPartOf(rcpt);
            if (!LocalMailbox.IsSafeName(local))
            {
                results.Add(new RecipientResult(rcpt, RecipientStatus.Bounced, "5.1.3 bad local mailbox name", "local"));
                continue;
            }
            var user = AsciiCaseComparer.Fold(local); // not ToLowerInvariant: U+212A is no "k" here, as in the tables
            var folder = Path.Combine(_options.MaildirRoot, user);
            Directory.CreateDirectory(Path.Combine(folder, "tmp"));
            Directory.CreateDirectory(Path.Combine(folder, "new"));
            Directory.CreateDirectory(Path.Combine(folder, "cur"));
            var name = $"{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}.P{Environment.ProcessId}Q{Interlocked.Increment(ref _counter)}.{queueId}.{_options.MyHostname}";
            var tmp = Path.Combine(folder, "tmp", name);
            var header = Encoding.UTF8.GetBytes($"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n");
            await using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 65536, FileOptions.Asynchronous))
            {
                await file.WriteAsync(header, ct);
                await file.WriteAsync(message, ct);
                await file.FlushAsync(ct);
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, Path.Combine(folder, "new", name));
            results.Add(new RecipientResult(rcpt, RecipientStatus.Delivered, "delivered to maildir", "local"));
        }
        return results;
    }
}

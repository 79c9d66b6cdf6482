using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Mta.Ingress.Metrics;

namespace Mta.Ingress.Screening;

/// <summary>
/// Postfix's postscreen in front of the MX listener's sessions: a client neither trusted nor remembered as passed gets
/// the first line of a multi-line greeting (<c>220-</c>) and a pause, during which the DNS lists are asked; a client
/// that talks before the greeting is over is a spambot that does not wait for its turn. The verdict (<see
/// cref="ScreenRules"/>) lets it through to the session, has the session refuse its recipients, or drops it; a pass is
/// remembered (<see cref="PassCache"/>) so it is not paused again for a while, on any replica.
/// </summary>
public sealed class Postscreen(PostscreenSettings settings, DnsblLookup? dnsbl, PassCache cache, TimeProvider clock, IngressMetrics? metrics, ILogger log)
{
    private static readonly ScreenVerdict Through = new(ScreenAction.Ignore, null, null, []);

    /// <summary>The verdict for a client that closed the connection during the pause.</summary>
    public static readonly ScreenVerdict HungUp = new(ScreenAction.Drop, null, null, ["HANGUP"]);

    /// <summary>Whether the tests are on.</summary>
    public bool Enabled => settings.Enabled;

    /// <summary>
    /// Screens <paramref name="client"/>: on return the greeting's first line and the pause are behind it, and on a drop
    /// its last words too. What the client sent early stays in <paramref name="input"/> for the session to judge.
    /// </summary>
    public async Task<ScreenVerdict> ScreenAsync(PipeReader input, PipeWriter output, IPEndPoint client, string hostname, CancellationToken ct)
    {
        var at = $"[{client.Address}]:{client.Port}";
        if (await cache.PassedAsync(client.Address, ct))
        {
            log.LogInformation("PASS OLD {Client}", at);
            metrics?.Screened("pass_old");
            return Through;
        }
        log.LogInformation("CONNECT from {Client}", at);
        var queries = settings.Dnsbl ? dnsbl!.Start(client.Address, ct) : null;
        await output.WriteAsync(Encoding.ASCII.GetBytes($"220-{hostname} ESMTP\r\n"), ct);
        var pregreet = await PauseAsync(input, queries, at, ct);
        if (pregreet == Talk.HungUp) return HungUp;
        var (score, listedBy, ttl) = queries?.Current() ?? (0, null, TimeSpan.Zero);
        var verdict = pregreet == Talk.Early && settings.GreetAction == ScreenAction.Drop
            ? new ScreenVerdict(ScreenAction.Drop, "521 5.5.1 Protocol error", null, ["PREGREET"])
            : ScreenRules.Decide(settings, new ScreenFacts(client.Address, pregreet == Talk.Early, score, listedBy, ttl), clock.GetUtcNow());
        await ConcludeAsync(verdict, output, client.Address, at, score, ct);
        return verdict;
    }

    private async Task ConcludeAsync(ScreenVerdict verdict, PipeWriter output, IPAddress client, string at, int score, CancellationToken ct)
    {
        if (verdict.Findings.Contains($"DNSBL rank {score}")) log.LogInformation("DNSBL rank {Score} for {Client}", score, at);
        if (verdict.PassUntil is { } until)
        {
            log.LogInformation("PASS NEW {Client}", at);
            metrics?.Screened("pass_new");
            await cache.RememberAsync(client, until, ct);
            return;
        }
        metrics?.Screened(verdict.Action switch { ScreenAction.Drop => "drop", ScreenAction.Enforce => "enforce", _ => "ignore" });
        if (verdict.Action != ScreenAction.Drop) return;
        log.LogInformation("DISCONNECT {Client}: {Reply}", at, verdict.Reply);
        await output.WriteAsync(Encoding.ASCII.GetBytes(verdict.Reply + "\r\n"), ct);
    }

    private enum Talk { Waited, Early, HungUp }

    /// <summary>
    /// The greeting pause: over after <c>postscreen_greet_wait</c>, or sooner when the lists have allowlisted the client,
    /// or when it talked early and the lists have answered (or a drop is due at once).
    /// </summary>
    private async Task<Talk> PauseAsync(PipeReader input, DnsblLookup.Queries? queries, string at, CancellationToken ct)
    {
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var never = Task.Delay(Timeout.Infinite, watching.Token);
        var timer = Task.Delay(settings.GreetWait, clock, watching.Token);
        var watch = WatchAsync(input, watching.Token);
        var talk = watch;
        var answers = queries?.Done ?? never;
        var outcome = Talk.Waited;
        try
        {
            while (true)
            {
                var done = await Task.WhenAny(timer, talk, answers);
                if (done == timer) break;
                if (done == answers)
                {
                    if (outcome == Talk.Waited && ScreenRules.Allowlisted(settings, queries!.Current().Score)) break;
                    if (outcome == Talk.Early) break;
                    answers = never;
                    continue;
                }
                var (early, eof) = await talk;
                if (eof) return Talk.HungUp;
                log.LogInformation("PREGREET {Octets} from {Client}: {Text}", early.Length, at, early);
                outcome = Talk.Early;
                if (settings.GreetAction == ScreenAction.Drop || queries is null || queries.Done.IsCompleted) break;
                talk = new TaskCompletionSource<(string, bool)>().Task; // heard once is enough
            }
        }
        finally
        {
            // The pending read ends before the session reads: a pipe takes one reader at a time.
            watching.Cancel();
            await watch;
        }
        return outcome;
    }

    /// <summary>
    /// Waits for the client's first octets without taking them (the session judges them too); EOF when it closed. The
    /// text is what postscreen logs: at most 100 octets, control characters escaped.
    /// </summary>
    private static async Task<(string Text, bool Eof)> WatchAsync(PipeReader input, CancellationToken ct)
    {
        try
        {
            var read = await input.ReadAsync(ct);
            var buffer = read.Buffer;
            var head = buffer.Slice(0, Math.Min(buffer.Length, 100)).ToArray();
            // Nothing marked examined: the session's first read gets these octets at once.
            input.AdvanceTo(buffer.Start);
            if (buffer.Length == 0 && read.IsCompleted) return ("", true);
            var text = new StringBuilder();
            foreach (var b in head) text.Append(b is >= 0x20 and < 0x7F ? (char)b : b == '\r' ? "\\r" : b == '\n' ? "\\n" : $"\\x{b:x2}");
            return (text.ToString(), false);
        }
        catch (OperationCanceledException) { return ("", true); } // the pause is over, or the connection is
    }
}

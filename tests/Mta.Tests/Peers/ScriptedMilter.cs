using System.Text.Json;

namespace Mta.Tests.Peers;

/// <summary>
/// <c>scripted_milter.py</c> under Debian's python3-milter (Sendmail's libmilter): a real milter whose answers the
/// test picks through the mail it sends, and which writes down every event it got with its macros.
/// </summary>
public sealed class ScriptedMilter : PeerProcess
{
    private readonly string _events;

    /// <summary>Its name (in its <c>X-Milter-NAME</c> header).</summary>
    public string Name { get; }

    /// <summary>Where it listens, as <c>Ingress:Milters</c> names it.</summary>
    public string Address { get; }

    private ScriptedMilter(string name, int port, string events, bool noReply)
        : base("/usr/bin/python3", [Path.Combine(TestEnvironment.RepoRoot, "tests", "Mta.Tests", "Peers", "scripted_milter.py"),
            $"inet:{port}@127.0.0.1", events, name, .. noReply ? new[] { "noreply" } : []])
        => (Name, Address, _events) = (name, $"inet:127.0.0.1:{port}", events);

    /// <summary>Starts one and waits until it listens.</summary>
    public static async Task<ScriptedMilter> StartAsync(string name = "a", bool noReply = false)
    {
        var port = TestEnvironment.FreeTcpPort();
        var milter = new ScriptedMilter(name, port, Path.Combine(TestEnvironment.TempFolder("milter"), "events.jsonl"), noReply);
        await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(20), milter.Process);
        return milter;
    }

    /// <summary>One event as the milter got it.</summary>
    public sealed record Event(string Milter, string Name, string[] Args, Dictionary<string, string> Macros);

    /// <summary>Every event so far, in order.</summary>
    public IReadOnlyList<Event> Events()
    {
        if (!File.Exists(_events)) return [];
        return [.. File.ReadAllLines(_events).Where(l => l.Length > 0).Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            var r = doc.RootElement;
            return new Event(r.GetProperty("milter").GetString()!, r.GetProperty("event").GetString()!,
                [.. r.GetProperty("args").EnumerateArray().Select(a => a.GetString()!)],
                r.GetProperty("macros").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!));
        })];
    }

    /// <summary>Waits until an event named <paramref name="name"/> has come (events are written as they arrive).</summary>
    public async Task<IReadOnlyList<Event>> EventsAfterAsync(string name, int count = 1)
    {
        await TestEnvironment.EventuallyAsync(() => Task.FromResult(Events().Count(e => e.Name == name) >= count), TimeSpan.FromSeconds(10));
        return Events();
    }
}

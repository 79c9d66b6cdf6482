using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Mta.Ingress.Auth;

/// <summary>
/// Failed logins counted over a sliding window, per client and per user name (anvil's spirit; Postfix itself leaves
/// this to fail2ban): past a client's limit its sessions are closed at the next AUTH, past a name's limit that name
/// gets a temporary failure without its password being hashed at all, so guessing costs the attacker time and the
/// ingress nothing. Clients are keyed by their <see cref="Policy.ClientGroup"/> (IPv6 by its /64 by default). Counted
/// per ingress replica.
/// </summary>
public sealed class AuthThrottle(int clientLimit, int userLimit, TimeSpan window, TimeProvider clock, Policy.ClientGroup? groups = null)
{
    /// <summary>Most names and clients tracked at once; past it, new ones are not counted (the limits of the known ones hold).</summary>
    internal const int MaxTracked = 50_000;

    /// <summary>A full table is searched for entries whose failures have all left the window at most this often.</summary>
    internal static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    private readonly Policy.ClientGroup _groups = groups ?? Policy.ClientGroup.Default;
    private readonly ConcurrentDictionary<string, Queue<long>> _clients = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Queue<long>> _users = new(StringComparer.Ordinal);
    private readonly Policy.SweepSchedule _clientSweep = new(SweepInterval), _userSweep = new(SweepInterval);

    /// <summary>True when <paramref name="client"/> has had its limit of failures within the window.</summary>
    public bool ClientBlocked(IPAddress client) => clientLimit > 0 && Recent(_clients, _groups.Of(client)) >= clientLimit;

    /// <summary>True when <paramref name="name"/> has had its limit of failures within the window, from anywhere.</summary>
    public bool UserBlocked(string name) => userLimit > 0 && Recent(_users, name) >= userLimit;

    /// <summary>Counts one failed login.</summary>
    public void Failed(IPAddress client, string name)
    {
        Count(_clients, _clientSweep, _groups.Of(client));
        Count(_users, _userSweep, name);
    }

    /// <summary>How many times a full table was searched.</summary>
    internal int Sweeps => _clientSweep.Sweeps + _userSweep.Sweeps;

    private int Recent(ConcurrentDictionary<string, Queue<long>> counts, string key)
    {
        if (!counts.TryGetValue(key, out var times)) return 0;
        lock (times)
        {
            Expire(times);
            return times.Count;
        }
    }

    private void Count(ConcurrentDictionary<string, Queue<long>> counts, Policy.SweepSchedule sweep, string key)
    {
        if (counts.Count >= MaxTracked && sweep.Due(clock.GetUtcNow())) Prune(counts);
        if (counts.Count >= MaxTracked && !counts.ContainsKey(key)) return;
        var times = counts.GetOrAdd(key, _ => new Queue<long>());
        lock (times)
        {
            Expire(times);
            times.Enqueue(clock.GetTimestamp());
        }
    }

    private void Expire(Queue<long> times)
    {
        while (times.Count > 0 && clock.GetElapsedTime(times.Peek()) > window) times.Dequeue();
    }

    private void Prune(ConcurrentDictionary<string, Queue<long>> counts)
    {
        foreach (var (key, times) in counts)
            lock (times)
            {
                Expire(times);
                if (times.Count == 0) counts.TryRemove(key, out _);
            }
    }
}

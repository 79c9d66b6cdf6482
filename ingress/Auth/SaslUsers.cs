using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Configuration;

namespace Mta.Ingress.Auth;

/// <summary>
/// Submission users, from a mounted file of <c>name:hash</c> lines (a Kubernetes Secret), read again
/// when it changes. Hashes are salted PBKDF2-SHA256 in the form
/// <c>$pbkdf2-sha256$ITERATIONS$SALT$HASH</c> (base64), made by <c>Mta.Ingress hash-password</c>.
/// Plain passwords are never accepted in the file.
/// </summary>
public sealed class SaslUsers
{
    /// <summary>Iterations for new hashes (OWASP's 2023 figure for PBKDF2-SHA256).</summary>
    public const int Iterations = 600_000;

    private const string Scheme = "pbkdf2-sha256";
    private readonly string? _file;
    private readonly ILogger<SaslUsers> _log;
    /// <summary>The users file, read again when it changes (a Secret update); null when none is configured.</summary>
    private readonly WatchedFile<Dictionary<string, (int Iterations, byte[] Salt, byte[] Hash)>>? _users;

    // Verifying an unknown user costs the same as a known one, so timing does not tell names apart.
    private static readonly (int, byte[], byte[]) Decoy = (Iterations, new byte[16], new byte[32]);

    // Hashing runs on the thread pool, as many at once as there are cores, never on a session's I/O path.
    private static readonly SemaphoreSlim Hashing = new(Environment.ProcessorCount);

    private readonly AuthThrottle _throttle;

    /// <summary>Reads <see cref="IngressOptions.UsersFile"/>; a malformed line fails at start with its line number.</summary>
    public SaslUsers(IOptions<IngressOptions> options, ILogger<SaslUsers> log, TimeProvider? clock = null)
    {
        _file = options.Value.UsersFile;
        _log = log;
        _throttle = new AuthThrottle(options.Value.AuthFailureLimit, options.Value.AuthUserFailureLimit,
            TimeSpan.FromSeconds(options.Value.AuthFailureWindowSeconds), clock ?? TimeProvider.System, Policy.ClientGroup.From(options.Value));
        if (Configured)
            _users = new(_file!, Parse,
                error => _log.LogWarning("SASL users file {File} not reloaded, keeping the previous one: {Error}", _file, error),
                users => _log.LogInformation("SASL users reloaded from {File}: {Count} users", _file, users.Count));
    }

    /// <summary>True when a users file is configured (AUTH is offered after TLS).</summary>
    public bool Configured => !string.IsNullOrEmpty(_file);

    /// <summary>
    /// A login attempt from <paramref name="client"/>: refused at once when the client or the name is over its limit of
    /// failures (<see cref="AuthThrottle"/>), else checked off the caller's thread, a failure counted.
    /// </summary>
    public async Task<AuthOutcome> LoginAsync(System.Net.IPAddress client, string name, string password, CancellationToken ct)
    {
        if (_throttle.ClientBlocked(client)) return AuthOutcome.ClientThrottled;
        if (_throttle.UserBlocked(name)) return AuthOutcome.UserThrottled;
        bool ok;
        await Hashing.WaitAsync(ct);
        try { ok = await Task.Run(() => Verify(name, password), ct); }
        finally { Hashing.Release(); }
        if (ok) return AuthOutcome.Success;
        _throttle.Failed(client, name);
        return AuthOutcome.Failed;
    }

    /// <summary>Checks a name and password in constant time per attempt.</summary>
    public bool Verify(string name, string password)
    {
        (int Iterations, byte[] Salt, byte[] Hash) entry = default;
        var known = _users is not null && _users.Value.TryGetValue(name, out entry);
        var (iterations, salt, hash) = known ? entry : Decoy;
        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, hash.Length);
        return CryptographicOperations.FixedTimeEquals(actual, hash) && known;
    }

    /// <summary>A new hash line value for a password.</summary>
    public static string Hash(string password)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, Iterations, HashAlgorithmName.SHA256, 32);
        return $"${Scheme}${Iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    internal static Dictionary<string, (int, byte[], byte[])> Parse(IEnumerable<string> lines, string source)
    {
        var users = new Dictionary<string, (int, byte[], byte[])>(StringComparer.Ordinal);
        var n = 0;
        foreach (var raw in lines)
        {
            n++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var colon = line.IndexOf(':');
            var parts = colon < 0 ? [] : line[(colon + 1)..].Split('$');
            // "$pbkdf2-sha256$N$salt$hash" splits into "", scheme, N, salt, hash.
            if (colon <= 0 || parts.Length != 5 || parts[0] != "" || parts[1] != Scheme || !int.TryParse(parts[2], out var iterations) || iterations < 10_000)
                throw new FormatException($"{source}:{n}: expected 'name:${Scheme}$ITERATIONS$SALT$HASH' (make one with: Mta.Ingress hash-password)");
            try
            {
                users[line[..colon]] = (iterations, Convert.FromBase64String(parts[3]), Convert.FromBase64String(parts[4]));
            }
            catch (FormatException)
            {
                throw new FormatException($"{source}:{n}: salt or hash is not base64");
            }
        }
        return users;
    }
}

/// <summary>How a login attempt ended.</summary>
public enum AuthOutcome
{
    /// <summary>Name and password match.</summary>
    Success,
    /// <summary>They do not (counted).</summary>
    Failed,
    /// <summary>Not tried: the client has failed too often lately.</summary>
    ClientThrottled,
    /// <summary>Not tried: this name has failed too often lately, from anywhere.</summary>
    UserThrottled,
}

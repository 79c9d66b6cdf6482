namespace Mta.Mail.Configuration;

/// <summary>
/// A configuration file (maps, checks, key lists) mounted from a ConfigMap or Secret, parsed once and parsed again
/// when it changes. The file's time stamp is looked at no more than once per second. A changed file that does not
/// parse is reported through <c>reloadFailed</c> and the last good version stays in use, so a typo in an update
/// never stops mail; a file that is broken at start-up stops the start, with its file and line.
/// </summary>
/// <typeparam name="T">What the file parses into.</typeparam>
public sealed class WatchedFile<T> where T : class
{
    private static readonly long CheckIntervalMs = 1000;

    private readonly string _path;
    private readonly Func<string[], string, T> _parse;
    private readonly Action<string>? _reloadFailed;
    private readonly Action<T>? _reloaded;
    private readonly Lock _lock = new();
    private T _value;
    private DateTime _stamp;
    private long _checkedAt;

    /// <summary>
    /// Reads and parses <paramref name="path"/>; <paramref name="parse"/> gets the lines and the path (for messages).
    /// <paramref name="reloaded"/> hears of each new version taken into use after the first.
    /// </summary>
    public WatchedFile(string path, Func<string[], string, T> parse, Action<string>? reloadFailed = null, Action<T>? reloaded = null)
    {
        _path = path;
        _parse = parse;
        _reloadFailed = reloadFailed;
        _reloaded = reloaded;
        _stamp = File.GetLastWriteTimeUtc(path);
        _value = parse(File.ReadAllLines(path), path);
        _checkedAt = Environment.TickCount64;
    }

    /// <summary>The current parsed content.</summary>
    public T Value
    {
        get
        {
            var now = Environment.TickCount64;
            if (now - Volatile.Read(ref _checkedAt) >= CheckIntervalMs) Refresh(now);
            return _value;
        }
    }

    private void Refresh(long now)
    {
        lock (_lock)
        {
            _checkedAt = now;
            DateTime stamp;
            try { stamp = File.GetLastWriteTimeUtc(_path); }
            catch (IOException) { return; }
            if (stamp == _stamp) return;
            _stamp = stamp;
            try
            {
                _value = _parse(File.ReadAllLines(_path), _path);
                _reloaded?.Invoke(_value);
            }
            catch (Exception e) when (e is FormatException or IOException)
            {
                _reloadFailed?.Invoke(e.Message);
            }
        }
    }
}

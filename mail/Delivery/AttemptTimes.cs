using System.Diagnostics;

namespace Mta.Mail.Delivery;

/// <summary>
/// Where the time of one delivery attempt went, for the log's <c>delays=a/b/c/d</c>: the transports mark
/// when the connection was ready (DNS, connect, greeting, EHLO and TLS are <c>c</c>; the transaction is <c>d</c>),
/// and say whether a cached connection was reused (Postfix's <c>conn_use=</c>).
/// </summary>
public sealed class AttemptTimes
{
    private readonly long _start = Stopwatch.GetTimestamp();
    private long _connected;
    private long _done;

    /// <summary>Marks the connection as ready for the transaction.</summary>
    public void Connected() => _connected = Stopwatch.GetTimestamp();

    /// <summary>Marks the end of the attempt.</summary>
    public void Done() => _done = Stopwatch.GetTimestamp();

    /// <summary>How many times the connection has carried a transaction, this one included; 1 for a fresh connection.</summary>
    public int ConnectionUse { get; set; } = 1;

    /// <summary>Connection setup: from the start of the attempt until the connection was ready.</summary>
    public TimeSpan Setup => _connected == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_start, _connected);

    /// <summary>The transaction: from the ready connection (or the start) to the end.</summary>
    public TimeSpan Transfer => Stopwatch.GetElapsedTime(_connected == 0 ? _start : _connected, _done == 0 ? Stopwatch.GetTimestamp() : _done);
}

namespace Mta.Tests.Peers;

/// <summary>
/// clamd and clamav-milter (Debian's) on loopback, with a signature database made here: one body signature for the
/// EICAR test string (no network for the official databases). Infected mail is refused; clean mail gets ClamAV's headers.
/// </summary>
public sealed class ClamAvMilter : IAsyncDisposable
{
    private readonly PeerProcess _clamd;
    private readonly PeerProcess _milter;

    /// <summary>Where clamav-milter listens, as <c>Ingress:Milters</c> names it.</summary>
    public string Address { get; }

    private ClamAvMilter(PeerProcess clamd, PeerProcess milter, int port) => (_clamd, _milter, Address) = (clamd, milter, $"inet:127.0.0.1:{port}");

    /// <summary>Starts clamd, waits for its socket, then clamav-milter.</summary>
    public static async Task<ClamAvMilter> StartAsync()
    {
        var folder = TestEnvironment.TempFolder("clamav");
        var db = Directory.CreateDirectory(Path.Combine(folder, "db")).FullName;
        var eicar = Convert.ToHexString("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"u8).ToLowerInvariant();
        await File.WriteAllTextAsync(Path.Combine(db, "test.ndb"), $"Eicar-Test-Signature:0:*:{eicar}\n");
        var socket = Path.Combine(folder, "clamd.sock");
        await File.WriteAllTextAsync(Path.Combine(folder, "clamd.conf"),
            $"LocalSocket {socket}\nDatabaseDirectory {db}\nForeground yes\nTemporaryDirectory {folder}\nPidFile {folder}/clamd.pid\n");
        var clamd = new PeerProcess(TestEnvironment.RequireTool("clamd"), ["-c", Path.Combine(folder, "clamd.conf")]);
        try
        {
            if (!await TestEnvironment.EventuallyAsync(() => Task.FromResult(File.Exists(socket)), TimeSpan.FromSeconds(30)))
                throw new InvalidOperationException("clamd did not start: " + clamd.Output);
            var port = TestEnvironment.FreeTcpPort();
            await File.WriteAllTextAsync(Path.Combine(folder, "milter.conf"), $"MilterSocket inet:{port}@127.0.0.1\nClamdSocket unix:{socket}\n"
                + $"Foreground yes\nOnInfected Reject\nRejectMsg Virus found: %v\nOnFail Defer\nAddHeader Replace\nPidFile {folder}/milter.pid\n");
            var milter = new PeerProcess(TestEnvironment.RequireTool("clamav-milter"), ["-c", Path.Combine(folder, "milter.conf")]);
            await TestEnvironment.WaitForTcpAsync(port, TimeSpan.FromSeconds(20), milter.Process);
            return new ClamAvMilter(clamd, milter, port);
        }
        catch
        {
            await clamd.DisposeAsync();
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _milter.DisposeAsync();
        await _clamd.DisposeAsync();
    }
}

namespace Mta.Tests.Peers;

/// <summary>
/// A real Azurite (from the repository's node_modules) on free ports, in memory.
/// <c>--skipApiVersionCheck</c> because Azure.Storage.Queues 12.28.1 sends a service version
/// Azurite 3.37.0 does not know yet; make run and the dev overlay use the same flag.
/// </summary>
public sealed class Azurite : PeerProcess
{
    /// <summary>The well-known development account key Azurite accepts.</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// <summary>Blob service port.</summary>
    public int BlobPort { get; }

    /// <summary>Queue service port.</summary>
    public int QueuePort { get; }

    /// <summary>Table service port.</summary>
    public int TablePort { get; }

    private Azurite(int blobPort, int queuePort, int tablePort, string? location, string? debugLog = null, IReadOnlyDictionary<string, string?>? environment = null)
        : base(Path.Combine(TestEnvironment.RepoRoot, "node_modules", ".bin", "azurite"),
            [.. Args(blobPort, queuePort, tablePort, location), .. debugLog is null ? Array.Empty<string>() : ["--debug", debugLog]], environment: environment)
    {
        BlobPort = blobPort;
        QueuePort = queuePort;
        TablePort = tablePort;
    }

    private static IEnumerable<string> Args(int blobPort, int queuePort, int tablePort, string? location)
    {
        string[] common = ["--silent", "--skipApiVersionCheck", "--disableTelemetry", "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1",
            "--tableHost", "127.0.0.1", "--blobPort", blobPort.ToString(), "--queuePort", queuePort.ToString(), "--tablePort", tablePort.ToString()];
        return location is null ? [.. common, "--inMemoryPersistence"] : [.. common, "--location", location];
    }

    /// <summary>
    /// Starts Azurite; with fixed ports when given (to bring storage "back" on the same address); with
    /// <paramref name="debugLog"/>, Azurite logs every request there (one <c>Operation=</c> line each); with
    /// <paramref name="location"/>, it keeps its data in that folder (and finds it there again after a restart), else in memory.
    /// </summary>
    public static async Task<Azurite> StartAsync(int? blobPort = null, int? queuePort = null, int? tablePort = null, string? debugLog = null,
        string? location = null) => await StartAsync(blobPort, queuePort, tablePort, debugLog, location, environment: null);

    /// <summary>
    /// Starts Azurite with <paramref name="accounts"/> accounts besides the development one (see
    /// <see cref="AccountConnectionString"/>), logging every request to <paramref name="debugLog"/> when given: empty
    /// storage for each of a class's tests from one process.
    /// </summary>
    public static Task<Azurite> StartWithAccountsAsync(int accounts, string? debugLog = null) =>
        StartAsync(null, null, null, debugLog, null, AccountsEnvironment(accounts));

    /// <summary>The connection string of account <paramref name="n"/> (from 1) of an Azurite started with accounts.</summary>
    public string AccountConnectionString(int n) => ConnectionStringFor(BlobPort, QueuePort, TablePort, AccountName(n));

    private static Dictionary<string, string?> AccountsEnvironment(int accounts) => new()
    {
        ["AZURITE_ACCOUNTS"] = string.Join(';', Enumerable.Range(1, accounts).Select(i => $"{AccountName(i)}:{AccountKey}")),
    };

    private static async Task<Azurite> StartAsync(int? blobPort, int? queuePort, int? tablePort, string? debugLog, string? location,
        IReadOnlyDictionary<string, string?>? environment)
    {
        var bin = Path.Combine(TestEnvironment.RepoRoot, "node_modules", ".bin", "azurite");
        if (!File.Exists(bin))
            throw new InvalidOperationException($"{bin} missing: run 'npm ci' (make test does)");
        // A port picked free can be taken by someone else before Azurite binds it: try again with new ones.
        for (var attempt = 1; ; attempt++)
        {
            var ports = TestEnvironment.FreeTcpPorts(3);
            var azurite = new Azurite(blobPort ?? ports[0], queuePort ?? ports[1], tablePort ?? ports[2], location, debugLog, environment);
            try
            {
                await TestEnvironment.WaitForTcpAsync(azurite.BlobPort, TimeSpan.FromSeconds(30), azurite.Process);
                await TestEnvironment.WaitForTcpAsync(azurite.QueuePort, TimeSpan.FromSeconds(30), azurite.Process);
                await TestEnvironment.WaitForTcpAsync(azurite.TablePort, TimeSpan.FromSeconds(30), azurite.Process);
                return azurite;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await azurite.DisposeAsync();
            }
            catch (InvalidOperationException e)
            {
                await azurite.DisposeAsync();
                throw new InvalidOperationException($"{e.Message}; Azurite said:\n{azurite.Output}", e);
            }
        }
    }

    /// <summary>Stops Azurite as an operator would (SIGTERM), so it saves its state to its location first.</summary>
    public async Task StopAsync()
    {
        if (Process.HasExited) return;
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", Process.Id.ToString()])) await kill.WaitForExitAsync();
        await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>A full connection string for this instance.</summary>
    public string ConnectionString => ConnectionStringFor(BlobPort, QueuePort, TablePort);

    /// <summary>A connection string for Azurite at the given ports (running or not), for one of its accounts.</summary>
    public static string ConnectionStringFor(int blobPort, int queuePort, int tablePort, string account = "devstoreaccount1") =>
        $"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={AccountKey};" +
        $"BlobEndpoint=http://127.0.0.1:{blobPort}/{account};QueueEndpoint=http://127.0.0.1:{queuePort}/{account};" +
        $"TableEndpoint=http://127.0.0.1:{tablePort}/{account};";

    // One Azurite for the whole run, started on first use, with an account for every test that asks (AZURITE_ACCOUNTS):
    // a test gets empty storage of its own without the seconds a node process takes to start.
    private const int SharedAccounts = 400;
    private static int _leased;
    private static readonly Lazy<Task<Azurite>> Shared = new(async () =>
    {
        var azurite = await StartWithAccountsAsync(SharedAccounts);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { azurite.Process.Kill(entireProcessTree: true); } catch (Exception) { } };
        return azurite;
    });

    private static string AccountName(int i) => $"mtatest{i:D3}";

    /// <summary>
    /// Empty storage of its own for one test: a fresh account in the run's shared Azurite. Tests that stop, restart or
    /// watch Azurite itself start their own with <see cref="StartAsync(int?, int?, int?, string?, string?)"/>.
    /// </summary>
    public static async Task<AzuriteAccount> LeaseAsync()
    {
        var azurite = await Shared.Value;
        var n = Interlocked.Increment(ref _leased);
        if (n > SharedAccounts) return new AzuriteAccount(await StartAsync(), null); // more tests than accounts: a process of its own
        return new AzuriteAccount(azurite, azurite.AccountConnectionString(n));
    }
}

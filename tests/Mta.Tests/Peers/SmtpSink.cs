namespace Mta.Tests.Peers;

/// <summary>
/// Postfix's smtp-sink on a loopback port, dumping each transaction into its own file
/// (envelope as X-Mail-Args/X-Rcpt-Args lines, then the message with LF line ends, unstuffed).
/// </summary>
public sealed class SmtpSink : PeerProcess
{
    /// <summary>Listening port.</summary>
    public int Port { get; }

    /// <summary>Folder the dumps go to.</summary>
    public string DumpFolder { get; }

    private SmtpSink(string bin, string address, int port, string folder, string[] options)
        : base(bin, [.. options, "-u", "nobody", "-d", Path.Combine(folder, "%Y%m%d%H%M%S."), $"{address}:{port}", "100"])
    {
        Port = port;
        DumpFolder = folder;
    }

    /// <summary>
    /// Starts smtp-sink (it drops privileges to nobody, so the dump folder is world-writable).
    /// <paramref name="options"/> are smtp-sink's own, e.g. <c>-r RCPT</c> to answer RCPT with 4xx.
    /// </summary>
    public static Task<SmtpSink> StartAsync(params string[] options) => StartOnAsync(TestEnvironment.FreeTcpPort(), options);

    /// <summary>Starts smtp-sink on a given port (to bring a "server" back where it was).</summary>
    public static Task<SmtpSink> StartOnAsync(int port, params string[] options) => StartOnAsync("127.0.0.1", port, options);

    /// <summary>Starts smtp-sink on a given loopback address and port (a second "host" on 127.0.0.2).</summary>
    public static async Task<SmtpSink> StartOnAsync(string address, int port, params string[] options)
    {
        var bin = TestEnvironment.RequireTool("smtp-sink");
        var folder = TestEnvironment.TempFolder("sink");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, (UnixFileMode)0b111_111_111);
        var sink = new SmtpSink(bin, address, port, folder, options);
        await TestEnvironment.WaitForTcpAsync(sink.Port, TimeSpan.FromSeconds(10), sink.Process, System.Net.IPAddress.Parse(address));
        return sink;
    }

    /// <summary>
    /// The dumps of the transactions finished so far. smtp-sink opens a transaction's file at MAIL and writes it as the
    /// transaction goes, so a file it still holds open is a transaction in progress (empty, or cut short), not a dump.
    /// </summary>
    public IReadOnlyList<string> Dumps()
    {
        var files = Directory.GetFiles(DumpFolder); // before the open files are read: a file listed and not open is closed for good
        var open = OpenFiles();
        return files.Where(f => !open.Contains(f)).Order().Select(File.ReadAllText).ToList();
    }

    private HashSet<string> OpenFiles()
    {
        var fds = $"/proc/{Process.Id}/fd";
        var open = new HashSet<string>();
        try
        {
            foreach (var fd in Directory.GetFiles(fds))
                if (new FileInfo(fd).LinkTarget is { } target) open.Add(target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // the sink has ended: nothing is open
        return open;
    }
}

using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Mta.Tests.Peers;

/// <summary>
/// A loopback relay in front of one Azurite service that notes every HTTP request passing through it (request line
/// and If-Match; for a table batch, each operation inside it) and passes all bytes on unchanged, so Shared Key
/// signatures stay valid. Replies are not looked at.
/// </summary>
public sealed partial class RecordingRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly StorageService _service;
    private readonly int _target;
    private readonly ConcurrentQueue<StorageRequest> _requests;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    /// <summary>Where clients connect (127.0.0.1).</summary>
    public int Port { get; }

    /// <summary>Relays to 127.0.0.1:<paramref name="target"/>, noting requests in <paramref name="requests"/>.</summary>
    public RecordingRelay(StorageService service, int target, ConcurrentQueue<StorageRequest> requests)
    {
        (_service, _target, _requests) = (service, target, requests);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using var _ = client;
        using var server = new TcpClient();
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            var up = ForwardRequestsAsync(new HttpInput(client.GetStream()), server.GetStream());
            var down = server.GetStream().CopyToAsync(client.GetStream(), _stop.Token);
            await Task.WhenAny(up, down);
        }
        catch (Exception) { /* either side went away */ }
    }

    // Request by request: the head, then exactly the body it announces, so the next request's head is found.
    private async Task ForwardRequestsAsync(HttpInput input, NetworkStream to)
    {
        try
        {
            while (await input.ReadHeadAsync(_stop.Token) is { } head)
            {
                await to.WriteAsync(head, _stop.Token);
                var text = Encoding.Latin1.GetString(head);
                var (raw, body) = await input.ReadBodyAsync(Header(text, "Content-Length"),
                    Header(text, "Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true, _stop.Token);
                await to.WriteAsync(raw, _stop.Token);
                Record(text, body);
            }
        }
        catch (Exception) { /* closed */ }
        finally
        {
            try { to.Socket.Shutdown(SocketShutdown.Send); } catch (Exception) { /* gone */ }
        }
    }

    private void Record(string head, byte[] body)
    {
        var line = head[..head.IndexOf("\r\n", StringComparison.Ordinal)].Split(' ');
        var request = StorageRequest.From(_service, line[0], line[1], Header(head, "If-Match"));
        _requests.Enqueue(request);
        if (request.Segments is ["$batch"])
            foreach (var inner in BatchOperations(Encoding.UTF8.GetString(body)))
                _requests.Enqueue(inner);
    }

    // A batch body is MIME: each operation is a request line followed by its headers.
    private IEnumerable<StorageRequest> BatchOperations(string body)
    {
        foreach (Match m in BatchOperation().Matches(body))
        {
            var ifMatch = Regex.Match(m.Groups["headers"].Value, @"^If-Match:\s*(.+?)\r?$", RegexOptions.Multiline | RegexOptions.IgnoreCase);
            yield return StorageRequest.From(_service, m.Groups["method"].Value, m.Groups["target"].Value,
                ifMatch.Success ? ifMatch.Groups[1].Value : null);
        }
    }

    [GeneratedRegex(@"^(?<method>GET|POST|PUT|MERGE|PATCH|DELETE) (?<target>\S+) HTTP/1\.1\r?\n(?<headers>(?:[^\r\n]+\r?\n)*)", RegexOptions.Multiline)]
    private static partial Regex BatchOperation();

    private static string? Header(string head, string name)
    {
        var m = Regex.Match(head, $@"^{Regex.Escape(name)}:\s*(.*?)\r$", RegexOptions.Multiline | RegexOptions.IgnoreCase);
        return m.Success ? m.Groups[1].Value : null;
    }

    /// <summary>Stops relaying.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}

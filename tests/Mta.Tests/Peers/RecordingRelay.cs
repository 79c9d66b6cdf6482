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
public sealed partial class RecordingRelay(StorageService service, int target, ConcurrentQueue<StorageRequest> requests) : LoopbackRelay(target)
{
    private readonly StorageService _service = service;
    private readonly ConcurrentQueue<StorageRequest> _requests = requests;

    /// <inheritdoc />
    protected override Task UpAsync(NetworkStream client, NetworkStream server) => ForwardRequestsAsync(new HttpInput(client), server);

    /// <inheritdoc />
    protected override Task DownAsync(NetworkStream server, NetworkStream client) => server.CopyToAsync(client, Stopping);

    // Request by request: the head, then exactly the body it announces, so the next request's head is found.
    private async Task ForwardRequestsAsync(HttpInput input, NetworkStream to)
    {
        try
        {
            while (await input.ReadHeadAsync(Stopping) is { } head)
            {
                await to.WriteAsync(head, Stopping);
                var text = Encoding.Latin1.GetString(head);
                var (raw, body) = await input.ReadBodyAsync(Header(text, "Content-Length"),
                    Header(text, "Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true, Stopping);
                await to.WriteAsync(raw, Stopping);
                Record(text, body);
            }
        }
        catch (Exception) { /* closed */ }
        finally
        {
            EndOfInput(to);
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
}

using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Ingress;
using Mta.Ingress.Auth;
using Mta.Ingress.Policy;
using Mta.Ingress.Smtp;
using Mta.Ingress.Tls;
using Mta.Mail;
using Mta.Mail.Configuration;
using Mta.Mail.Contracts;
using Mta.Mail.Routing;
using Mta.Tests.Peers;

namespace Mta.Tests.Protocol;

/// <summary>
/// The ingress's SMTP sessions over in-memory pipes, as Kestrel's connection tests run: no socket, no storage, the
/// settings in the same configuration keys as <see cref="MtaSystem"/>. What the sessions hand on is recorded
/// (<see cref="Accepted"/>). Cases about storage, cleanup, connection limits or the network stay integration tests.
/// </summary>
public sealed class InMemoryIngress : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly SmtpSessionServices _session;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _sessions = [];

    /// <summary>smtpd's log lines.</summary>
    public LogCapture Log { get; } = new();

    /// <summary>What the sessions handed on.</summary>
    public RecordingAcceptor Accepted { get; }

    private InMemoryIngress(IDictionary<string, string?>? settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["Mta:MyHostname"] = "mta.test",
            ["Mta:DataDirectory"] = TestEnvironment.TempFolder("data"),
            ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true", // never reached: messages stay under a block
        };
        foreach (var kv in settings ?? new Dictionary<string, string?>()) all[kv.Key] = kv.Value;
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(all).Build();
        var services = new ServiceCollection().AddLogging(l => l.AddProvider(Log));
        services.AddOptions<IngressOptions>().Bind(configuration.GetSection(IngressOptions.Section)).PostConfigure(o => o.ApplyDefaults());
        services.AddMailPipeline(configuration);
        services.AddSingleton<RelayPolicy>().AddSingleton<TlsCertificates>().AddSingleton<SaslUsers>();
        _services = services.BuildServiceProvider();
        Accepted = new RecordingAcceptor(_services.GetRequiredService<Mta.Mail.Spool.MessageSpool>());
        var mta = _services.GetRequiredService<IOptions<MtaOptions>>().Value;
        _session = new SmtpSessionServices(_services.GetRequiredService<IOptions<IngressOptions>>().Value, mta.MyHostname,
            mta.LocalDomains[0], _services.GetRequiredService<RelayPolicy>(), _services.GetRequiredService<LocalRecipients>(), Accepted,
            _services.GetRequiredService<TlsCertificates>(), _services.GetRequiredService<SaslUsers>(), TimeProvider.System,
            _services.GetRequiredService<ILoggerFactory>().CreateLogger("smtpd"),
            Milters: Mta.Ingress.Milter.MilterSettings.From(_services.GetRequiredService<IOptions<IngressOptions>>().Value, mta.MyHostname));
    }

    /// <summary>An ingress with <paramref name="settings"/> (configuration keys over the tests' defaults).</summary>
    public static Task<InMemoryIngress> StartAsync(IDictionary<string, string?>? settings = null)
        => Task.FromResult(new InMemoryIngress(settings));

    /// <summary>A client from <paramref name="client"/> on <paramref name="listener"/>, with the greeting it got.</summary>
    public async Task<(RawSmtpClient Client, string Greeting)> ConnectAsync(string client = "127.0.0.1", Listener listener = Listener.Mx)
    {
        Pipe toServer = new(), toClient = new();
        var session = new SmtpSession(toServer.Reader, toClient.Writer, IPAddress.Parse(client), listener, _session);
        var run = Task.Run(async () =>
        {
            try { await session.RunAsync(_stop.Token); }
            finally { await toClient.Writer.CompleteAsync(); }
        });
        lock (_sessions) _sessions.Add(run);
        return await RawSmtpClient.ConnectAsync(new ClientEnd(toClient.Reader, toServer.Writer));
    }

    /// <summary>The envelopes handed on so far, each with its octets as the ingress would queue a small message.</summary>
    public Task<List<IncomingEnvelope>> QueuedAsync()
        => Task.FromResult(Accepted.Messages.Select(m => m.Envelope with { Content = m.Content }).ToList());

    /// <summary>Ends every session still running (a client left open hangs up) and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.CancelAfter(TimeSpan.FromSeconds(5));
        Task[] running;
        lock (_sessions) running = [.. _sessions];
        try { await Task.WhenAll(running); } catch (OperationCanceledException) { }
        await _services.DisposeAsync();
    }

    /// <summary>The client's end of the pipe pair; closing it is the client hanging up.</summary>
    private sealed class ClientEnd(PipeReader input, PipeWriter output) : Stream
    {
        private readonly Stream _read = input.AsStream(), _write = output.AsStream();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => _write.Flush();
        public override Task FlushAsync(CancellationToken ct) => _write.FlushAsync(ct);
        public override int Read(byte[] buffer, int offset, int count) => _read.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => _read.ReadAsync(buffer, ct);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => _read.ReadAsync(buffer, offset, count, ct);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default) => _write.WriteAsync(buffer, ct);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => _write.WriteAsync(buffer, offset, count, ct);
        public override void Write(byte[] buffer, int offset, int count) => _write.Write(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) { _write.Dispose(); _read.Dispose(); }
            base.Dispose(disposing);
        }
    }
}

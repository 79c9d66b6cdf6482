using System.Net.Sockets;
using System.Text;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Integration;

/// <summary>
/// Random and mutated command lines and data thrown at the ingress's parser for a bounded time (seeded, so a
/// failure can be replayed): no crash, every session ends, and a well-formed transaction still works after.
/// </summary>
[RunsLong(15)] // a bounded time of random input
public sealed class FuzzTests
{
    private static readonly string[] Seeds =
    [
        "EHLO client.test", "HELO client.test", "MAIL FROM:<a@sender.test>", "MAIL FROM:<a@sender.test> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By",
        "RCPT TO:<user@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@localhost", "RCPT TO:<@a,@b:user@localhost>", "DATA", "BDAT 10", "BDAT 0 LAST",
        "RSET", "NOOP", "VRFY user", "HELP", "STARTTLS", "AUTH PLAIN AGFhAGI=", "AUTH LOGIN", "QUIT", "MAIL FROM:<>", "RCPT TO:<postmaster>",
        "RCPT TO:<\"quoted@local\"@localhost>", "MAIL FROM:<a@[127.0.0.1]>", ".", "..", "\u00e9\u00e8 unicode", "",
    ];

    [Fact]
    public async Task Random_and_mutated_input_never_crashes_the_parser_or_leaks_a_session()
    {
        await using var azurite = await Azurite.LeaseAsync();
        await using var mta = await MtaSystem.StartAsync(azurite.ConnectionString, new Dictionary<string, string?>
        {
            ["Ingress:TimeoutSeconds"] = "5", ["Ingress:MessageSizeLimit"] = "20000",
        }, functions: false);
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        var sessions = 0;
        while (DateTime.UtcNow < deadline)
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync("127.0.0.1", mta.SmtpPort);
            tcp.ReceiveTimeout = 2000;
            var stream = tcp.GetStream();
            var drain = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                try { while (await stream.ReadAsync(buffer) > 0) { } } catch (Exception) { /* closed */ }
            });
            try
            {
                for (var i = 0; i < random.Next(1, 40); i++)
                {
                    await stream.WriteAsync(Mutate(random));
                    // Mostly one line at a time, as a client waiting for replies would; sometimes all at once.
                    if (random.Next(4) > 0) await Task.Delay(random.Next(1, 4));
                }
            }
            catch (IOException) { /* the server hung up on us: allowed */ }
            tcp.Client.Shutdown(SocketShutdown.Send);
            await Task.WhenAny(drain, Task.Delay(3000));
            sessions++;
        }

        // Still a working server, and no session left behind.
        var reply = await TestMail.SendAsync(mta.SmtpPort, TestMail.Message("a@sender.test", "user@localhost", "after fuzzing"));
        Assert.StartsWith("2.0.0 Ok: queued as", reply);
        // Every session that began has ended: its own log's connect and disconnect lines pair up (the active-session
        // gauge says the same, but meters are the test process's, shared with every other ingress running beside it).
        int Connects() => mta.Log.Lines.Count(l => l.Contains("connect from") && !l.Contains("disconnect"));
        int Disconnects() => mta.Log.Lines.Count(l => l.Contains("disconnect from"));
        Assert.True(await TestEnvironment.EventuallyAsync(() => Task.FromResult(Connects() == Disconnects()), TimeSpan.FromSeconds(15)),
            $"sessions still open after {sessions} fuzz sessions (seed {seed}): connect {Connects()} disconnect {Disconnects()}");
        Assert.True(sessions > 20, $"only {sessions} sessions in the time (seed {seed})");
        Assert.Contains(mta.Log.Lines, l => l.Contains("connect from [127.0.0.1]")); // the ingress's log is being read
        Assert.DoesNotContain(mta.Log.Lines, l => l.StartsWith("Error") || l.StartsWith("Critical"));
    }

    /// <summary>A seed command with random damage: bytes flipped, cut, repeated, line ends swapped, or pure noise.</summary>
    private static byte[] Mutate(Random random)
    {
        var line = Encoding.UTF8.GetBytes(Seeds[random.Next(Seeds.Length)]).ToList();
        switch (random.Next(8))
        {
            case 0: // noise
                line = Enumerable.Range(0, random.Next(1, 700)).Select(_ => (byte)random.Next(256)).ToList();
                break;
            case 1: // flipped bytes
                for (var i = 0; i < Math.Max(1, line.Count / 8); i++)
                    if (line.Count > 0) line[random.Next(line.Count)] = (byte)random.Next(256);
                break;
            case 2: // cut short
                line = line.Take(random.Next(line.Count + 1)).ToList();
                break;
            case 3: // repeated, past the line limit
                line = Enumerable.Repeat(line, random.Next(2, 60)).SelectMany(l => l).ToList();
                break;
            case 4: // NULs and controls
                line.Insert(random.Next(line.Count + 1), (byte)random.Next(0, 32));
                break;
        }
        var end = random.Next(6) switch { 0 => "\n", 1 => "\r", 2 => "", _ => "\r\n" };
        return [.. line, .. Encoding.ASCII.GetBytes(end)];
    }
}

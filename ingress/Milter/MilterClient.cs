using Microsoft.Extensions.Logging;
using Mta.Ingress.Metrics;

namespace Mta.Ingress.Milter;

/// <summary>
/// One milter in one SMTP session (Postfix's milter8.c): its connection and negotiation, each event sent with its
/// macros and answered as the negotiated steps say, and the milter's state — accepted for the session or the
/// message, rejected for the session, or failed, after which every event gets its default action without a word to it.
/// </summary>
public sealed partial class MilterClient(MilterEndpoint endpoint, IReadOnlyDictionary<MilterCommand, string[]> macroNames, MilterFacts facts,
    ILogger log, IngressMetrics? metrics) : IAsyncDisposable
{
    private enum State { Ready, AcceptConnection, AcceptMessage, Failed }

    private MilterConnection? _connection;
    private State _state = State.Failed;
    private MilterActions _actions;
    private MilterSteps _steps;
    private readonly Dictionary<MilterCommand, string[]> _macros = new(macroNames);

    /// <summary>Postfix's def_reply: after a failure or a connection-level refusal, what every later event gets.</summary>
    private MilterVerdict? _persistent;

    /// <summary>After SMFIR_SKIP: the event type no longer sent for this message.</summary>
    private MilterCommand? _skipping;

    /// <summary>A MAIL event went out and the message is not over: an abort is owed if it ends otherwise.</summary>
    private bool _inTransaction;

    /// <summary>The milter's name: its address as configured.</summary>
    public string Name => endpoint.Name;

    /// <summary>What the milter may do at the end of a message, as negotiated.</summary>
    public MilterActions Actions => _actions;

    /// <summary>Whether header values are sent and taken with their leading space (SMFIP_HDR_LEADSPC).</summary>
    public bool LeadingSpace => (_steps & MilterSteps.HeaderLeadingSpace) != 0;

    /// <summary>Connects, negotiates, and sends the connect event.</summary>
    public async Task<MilterVerdict?> ConnectAsync(CancellationToken ct)
    {
        try
        {
            _connection = await MilterConnection.ConnectAsync(endpoint, ct);
            await NegotiateAsync(ct);
            _state = State.Ready;
        }
        catch (MilterProtocolException e)
        {
            return Fail("connect", e.Message);
        }
        var client = facts.Client;
        return await EventAsync(MilterCommand.Connect, MilterSteps.NoConnect, MilterSteps.NoReplyConnect,
            MilterCommands.Connect("unknown", client?.Address, client?.Port ?? 0), endpoint.CommandTimeout, ct);
    }

    /// <summary>SMFIC_HELO.</summary>
    public Task<MilterVerdict?> HeloAsync(string name, CancellationToken ct)
        => EventAsync(MilterCommand.Helo, MilterSteps.NoHelo, MilterSteps.NoReplyHelo, MilterCommands.Helo(name), endpoint.CommandTimeout, ct);

    /// <summary>SMFIC_MAIL: a transaction starts.</summary>
    public Task<MilterVerdict?> MailAsync(string sender, IEnumerable<string> parameters, CancellationToken ct)
    {
        if (_state == State.AcceptMessage) _state = State.Ready;
        _inTransaction = true;
        return EventAsync(MilterCommand.Mail, MilterSteps.NoMail, MilterSteps.NoReplyMail, MilterCommands.Mail(sender, parameters), endpoint.CommandTimeout, ct);
    }

    /// <summary>SMFIC_RCPT.</summary>
    public Task<MilterVerdict?> RcptAsync(string recipient, IEnumerable<string> parameters, CancellationToken ct)
        => EventAsync(MilterCommand.Rcpt, MilterSteps.NoRcpt, MilterSteps.NoReplyRcpt, MilterCommands.Rcpt(recipient, parameters), endpoint.CommandTimeout, ct);

    /// <summary>SMFIC_DATA.</summary>
    public Task<MilterVerdict?> DataAsync(CancellationToken ct)
        => EventAsync(MilterCommand.Data, MilterSteps.NoData, MilterSteps.NoReplyData, MilterCommands.Event(MilterCommand.Data), endpoint.CommandTimeout, ct);

    /// <summary>SMFIC_UNKNOWN: a command the session does not know.</summary>
    public Task<MilterVerdict?> UnknownAsync(string line, CancellationToken ct)
        => EventAsync(MilterCommand.Unknown, MilterSteps.NoUnknown, MilterSteps.NoReplyUnknown, MilterCommands.Unknown(line), endpoint.CommandTimeout, ct);

    /// <summary>SMFIC_ABORT, when a transaction this milter heard of ends without its message (RSET, a new HELO, a refusal).</summary>
    public async Task AbortAsync(CancellationToken ct)
    {
        if (_state == State.AcceptMessage) _state = State.Ready;
        _skipping = null;
        if (!_inTransaction) return;
        _inTransaction = false;
        if (_state != State.Ready || _connection is null) return;
        try
        {
            await _connection.SendAsync([MilterCommands.Event(MilterCommand.Abort)], endpoint.CommandTimeout, ct);
        }
        catch (MilterProtocolException e)
        {
            Fail("abort", e.Message);
        }
    }

    /// <summary>SMFIC_QUIT, and the connection closed.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_connection is null) return;
        try
        {
            if (_state != State.Failed)
                await _connection.SendAsync([MilterCommands.Event(MilterCommand.Quit)], endpoint.CommandTimeout, CancellationToken.None);
        }
        catch (MilterProtocolException) { } // the session is over either way
        await _connection.DisposeAsync();
        _connection = null;
    }

    /// <summary>
    /// SMFIC_OPTNEG: version, every action and every protocol step offered (recipients this MTA refused are never
    /// sent, so SMFIP_RCPT_REJ is not); the milter must ask for no more than that.
    /// </summary>
    private async Task NegotiateAsync(CancellationToken ct)
    {
        var offered = endpoint.Protocol >= 6 ? MilterSteps.All & ~MilterSteps.RejectedRecipients : (MilterSteps)0x7F;
        await _connection!.SendAsync([MilterCommands.OptionNegotiation(MilterActions.All, offered, endpoint.Protocol)], endpoint.CommandTimeout, ct);
        if (await _connection.ReadAsync(endpoint.CommandTimeout, ct) is not MilterReply.Negotiated negotiated)
            throw new MilterProtocolException("no option negotiation reply");
        if ((negotiated.Actions & ~MilterActions.All) != 0)
            throw new MilterProtocolException($"asks for actions 0x{(uint)negotiated.Actions:x} where 0x{(uint)MilterActions.All:x} are offered");
        if ((negotiated.Steps & ~offered) != 0)
            throw new MilterProtocolException($"asks for protocol steps 0x{(uint)negotiated.Steps:x} where 0x{(uint)offered:x} are offered");
        (_actions, _steps) = (negotiated.Actions, negotiated.Steps);
        foreach (var (stage, names) in negotiated.Macros)
            if (MilterMacros.Stage(stage) is { } command) _macros[command] = names.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>
    /// Sends one event with its macros, unless the milter's state or the negotiated steps say otherwise, and turns the
    /// reply into a verdict. Any failure is the milter's: its default action, from now on.
    /// </summary>
    private async Task<MilterVerdict?> EventAsync(MilterCommand command, MilterSteps notWanted, MilterSteps noReply, byte[] packet, TimeSpan timeout,
        CancellationToken ct)
    {
        if (_state == State.Failed || _persistent is not null || _connection is null) return _persistent;
        if (_state == State.AcceptConnection || _state == State.AcceptMessage && command is not (MilterCommand.Connect or MilterCommand.Helo)) return null;
        if (_skipping == command) return null;
        _skipping = null;
        var packets = new List<byte[]>(2);
        if (_macros.TryGetValue(command, out var names) && names.Length > 0)
            packets.Add(MilterCommands.Macros(command, MilterMacros.Values(names, facts.Value)));
        var wanted = (_steps & notWanted) == 0;
        if (wanted) packets.Add(packet);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            if (packets.Count > 0) await _connection.SendAsync(packets, timeout, ct);
            if (!wanted || (_steps & noReply) != 0)
            {
                if (wanted) metrics?.MilterReplied(Name, command.ToString(), "none", TimeSpan.Zero);
                return null;
            }
            var reply = await _connection.ReadAsync(timeout, ct);
            metrics?.MilterReplied(Name, command.ToString(), ReplyLabel(reply), System.Diagnostics.Stopwatch.GetElapsedTime(started));
            return Decide(command, reply);
        }
        catch (MilterProtocolException e)
        {
            return Fail(command.ToString(), e.Message);
        }
    }

    /// <summary>The verdict for a reply to an envelope or header event (Postfix's milter8_event).</summary>
    private MilterVerdict? Decide(MilterCommand command, MilterReply reply)
    {
        var connectionLevel = command is MilterCommand.Connect or MilterCommand.Helo;
        switch (reply)
        {
            case MilterReply.Simple { Code: MilterReplyCode.Continue }:
                return null;
            case MilterReply.Simple { Code: MilterReplyCode.Accept }:
                _state = connectionLevel ? State.AcceptConnection : State.AcceptMessage;
                return null;
            case MilterReply.Simple { Code: MilterReplyCode.Skip } when command == MilterCommand.Body:
                _skipping = MilterCommand.Body;
                return null;
            case MilterReply.Simple { Code: MilterReplyCode.Discard } when !connectionLevel:
                _state = State.AcceptMessage;
                return new MilterVerdict(MilterDecision.Discard, "milter triggers DISCARD action", Name);
            case MilterReply.Simple { Code: MilterReplyCode.Reject }:
                return Refusal(MilterVerdict.RejectReply, connectionLevel);
            case MilterReply.Simple { Code: MilterReplyCode.Tempfail }:
                return Refusal(MilterVerdict.TempfailReply, connectionLevel);
            case MilterReply.Reply custom:
                return Refusal(Unpercent(custom.Text), connectionLevel);
            case MilterReply.Simple { Code: MilterReplyCode.Shutdown }:
                _persistent = new MilterVerdict(MilterDecision.Shutdown, MilterVerdict.ShutdownReply, Name);
                return _persistent;
            default:
                return Fail(command.ToString(), $"unexpected reply {ReplyLabel(reply)} to {command}");
        }
    }

    /// <summary>A refusal; at connect or HELO it stands for the rest of the session (Sendmail's and Postfix's rule).</summary>
    private MilterVerdict Refusal(string reply, bool connectionLevel)
    {
        var verdict = new MilterVerdict(MilterDecision.Refuse, reply, Name);
        if (connectionLevel) _persistent = verdict;
        return verdict;
    }

    /// <summary>Sendmail used the reply as a format: "%%" is "%", and a lone "%" goes (as Postfix does).</summary>
    private static string Unpercent(string text) => System.Text.RegularExpressions.Regex.Replace(text, "%(%?)", "$1");

    /// <summary>The milter is given up for the session: logged, counted, the socket closed, its default action from now on.</summary>
    private MilterVerdict? Fail(string where, string why)
    {
        log.LogWarning("warning: milter {Milter}: {Where}: {Error}; default_action={Action}", Name, where, why, endpoint.DefaultAction.ToString().ToLowerInvariant());
        metrics?.MilterFailed(Name, where == "connect" ? "connect" : why.Contains("timeout") || why.Contains("timed out") ? "timeout" : "protocol");
        _state = State.Failed;
        _persistent = MilterVerdict.ForFailure(endpoint.DefaultAction, Name);
        var connection = _connection;
        _connection = null;
        if (connection is not null) _ = connection.DisposeAsync().AsTask();
        return _persistent;
    }

    private static string ReplyLabel(MilterReply reply) => reply switch
    {
        MilterReply.Simple s => s.Code.ToString().ToLowerInvariant(),
        MilterReply.Reply r => r.Temporary ? "tempfail" : "reject",
        _ => reply.GetType().Name.ToLowerInvariant(),
    };
}

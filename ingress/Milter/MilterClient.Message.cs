namespace Mta.Ingress.Milter;

// The message phase: header fields, end of header, body chunks, end of message and the modifications that answer it.
public sealed partial class MilterClient
{
    /// <summary>
    /// Sends the message as it stands (its header fields, then its body in chunks read from where the message lies)
    /// and takes the end-of-message answer: the verdict (null: the message goes on) and the milter's modifications.
    /// </summary>
    public async Task<(MilterVerdict? Verdict, MilterEdits Edits)> MessageAsync(MilterHeader header, Func<CancellationToken, Task<Stream>> openBody,
        long maxBody, CancellationToken ct)
    {
        var edits = new MilterEdits(maxBody);
        try
        {
            var verdict = await HeaderAsync(header, ct) ?? await BodyAsync(openBody, ct);
            if (verdict is null && Ready) verdict = await EndOfMessageAsync(edits, ct);
            return (verdict ?? (_state == State.Failed ? _persistent : null), edits);
        }
        finally
        {
            _inTransaction = false;
            _skipping = null;
            if (_state == State.AcceptMessage) _state = State.Ready;
        }
    }

    private bool Ready => _state == State.Ready && _connection is not null;

    private async Task<MilterVerdict?> HeaderAsync(MilterHeader header, CancellationToken ct)
    {
        if (!Ready) return _persistent;
        foreach (var field in header.Fields)
        {
            var packet = MilterCommands.Header(field.Name, MilterHeader.Sent(field, LeadingSpace));
            if (await EventAsync(MilterCommand.Header, MilterSteps.NoHeaders, MilterSteps.NoReplyHeader, packet, endpoint.ContentTimeout, ct) is { } verdict)
                return verdict;
            if (!Ready) return null;
        }
        return await EventAsync(MilterCommand.EndOfHeader, MilterSteps.NoEndOfHeader, MilterSteps.NoReplyEndOfHeader,
            MilterCommands.Event(MilterCommand.EndOfHeader), endpoint.ContentTimeout, ct);
    }

    /// <summary>The body in chunks of at most 64 KiB, until its end, a verdict, or SMFIR_SKIP.</summary>
    private async Task<MilterVerdict?> BodyAsync(Func<CancellationToken, Task<Stream>> openBody, CancellationToken ct)
    {
        if (!Ready || (_steps & MilterSteps.NoBody) != 0) return null;
        await using var body = await openBody(ct);
        var chunk = new byte[MilterProtocol.MaxData];
        int read;
        while ((read = await body.ReadAtLeastAsync(chunk, chunk.Length, throwOnEndOfStream: false, ct)) > 0)
        {
            if (await EventAsync(MilterCommand.Body, MilterSteps.NoBody, MilterSteps.NoReplyBody, MilterCommands.Body(chunk.AsSpan(0, read)),
                    endpoint.ContentTimeout, ct) is { } verdict)
                return verdict;
            if (!Ready || _skipping == MilterCommand.Body) break;
        }
        return null;
    }

    /// <summary>SMFIC_BODYEOB, then modifications until the final answer.</summary>
    private async Task<MilterVerdict?> EndOfMessageAsync(MilterEdits edits, CancellationToken ct)
    {
        var packets = new List<byte[]>(2);
        if (_macros.TryGetValue(MilterCommand.EndOfMessage, out var names) && names.Length > 0)
            packets.Add(MilterCommands.Macros(MilterCommand.EndOfMessage, MilterMacros.Values(names, facts.Value)));
        packets.Add(MilterCommands.Event(MilterCommand.EndOfMessage));
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            await _connection!.SendAsync(packets, endpoint.ContentTimeout, ct);
            while (true)
            {
                var reply = await _connection.ReadAsync(endpoint.ContentTimeout, ct);
                if (await TakeModificationAsync(reply, edits, ct)) continue;
                metrics?.MilterReplied(Name, MilterCommand.EndOfMessage.ToString(), ReplyLabel(reply), System.Diagnostics.Stopwatch.GetElapsedTime(started));
                return FinalAnswer(reply);
            }
        }
        catch (MilterProtocolException e)
        {
            return Fail(MilterCommand.EndOfMessage.ToString(), e.Message);
        }
    }

    /// <summary>Adds a modification to <paramref name="edits"/> (false: the reply is not one); one not negotiated is a protocol error.</summary>
    private async Task<bool> TakeModificationAsync(MilterReply reply, MilterEdits edits, CancellationToken ct)
    {
        var needs = reply switch
        {
            MilterReply.HeaderChange { Code: MilterReplyCode.ChangeHeader } => MilterActions.ChangeHeaders,
            MilterReply.HeaderChange => MilterActions.AddHeaders,
            MilterReply.BodyPart => MilterActions.ChangeBody,
            MilterReply.EnvelopeChange { Code: MilterReplyCode.ChangeFrom } => MilterActions.ChangeFrom,
            MilterReply.EnvelopeChange { Code: MilterReplyCode.DeleteRecipient } => MilterActions.DeleteRecipients,
            MilterReply.EnvelopeChange { Code: MilterReplyCode.AddRecipientWithParameters } => MilterActions.AddRecipientsWithParameters,
            MilterReply.EnvelopeChange => MilterActions.AddRecipients,
            MilterReply.Quarantine => MilterActions.Quarantine,
            _ => MilterActions.None,
        };
        if (needs == MilterActions.None) return false;
        if ((_actions & needs) == 0) throw new MilterProtocolException($"{ReplyLabel(reply)} without having negotiated {needs}");
        switch (reply)
        {
            case MilterReply.HeaderChange header: edits.AddHeader(header); break;
            case MilterReply.BodyPart part: await edits.AppendBodyAsync(part.Octets, ct); break;
            case MilterReply.EnvelopeChange { Code: MilterReplyCode.ChangeFrom } from: edits.Sender = from; break;
            case MilterReply.EnvelopeChange { Code: MilterReplyCode.DeleteRecipient } gone: edits.DeletedRecipients.Add(gone.Address); break;
            case MilterReply.EnvelopeChange added: edits.AddRecipient(added); break;
            case MilterReply.Quarantine hold: edits.Quarantine = hold.Reason.Length > 0 ? hold.Reason : "milter triggers HOLD action"; break;
        }
        return true;
    }

    /// <summary>The answer that ends a message's conversation.</summary>
    private MilterVerdict? FinalAnswer(MilterReply reply) => reply switch
    {
        MilterReply.Simple { Code: MilterReplyCode.Continue or MilterReplyCode.Accept } => null,
        MilterReply.Simple { Code: MilterReplyCode.Discard } => new MilterVerdict(MilterDecision.Discard, "milter triggers DISCARD action", Name),
        MilterReply.Simple { Code: MilterReplyCode.Reject } => new MilterVerdict(MilterDecision.Refuse, MilterVerdict.RejectReply, Name),
        MilterReply.Simple { Code: MilterReplyCode.Tempfail } => new MilterVerdict(MilterDecision.Refuse, MilterVerdict.TempfailReply, Name),
        MilterReply.Reply custom => new MilterVerdict(MilterDecision.Refuse, Unpercent(custom.Text), Name),
        MilterReply.Simple { Code: MilterReplyCode.Shutdown } => _persistent = new MilterVerdict(MilterDecision.Shutdown, MilterVerdict.ShutdownReply, Name),
        _ => Fail(MilterCommand.EndOfMessage.ToString(), $"unexpected reply {ReplyLabel(reply)} at the end of the message"),
    };
}

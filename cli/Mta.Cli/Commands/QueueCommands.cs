using System.ComponentModel;
using System.Text;
using System.Text.Json;
using Mta.Mail.Administration;
using Mta.Mail.Queues;
using Mta.Mail.Tracking;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Mta.Cli.Commands;

/// <summary>Output shared by the queue commands: a table for people, JSON for scripts.</summary>
internal static class Output
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static void WriteJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Json));

    /// <summary>
    /// One line for a person's terminal. Queue fields, remote replies and headers come from strangers: a control
    /// character in them (an escape sequence, a CR or LF that would fake another line) is shown as <c>\xNN</c>.
    /// </summary>
    public static void Line(string text = "") => Console.Out.WriteLine(Printable(text));

    /// <summary>Several lines (a header, CRLF-separated), each made printable like <see cref="Line"/>.</summary>
    public static void Lines(string text)
    {
        foreach (var line in text.Split("\r\n")) Line(line);
    }

    /// <summary>A table cell: printable, and Spectre's markup brackets escaped.</summary>
    public static string Cell(string text) => Markup.Escape(Printable(text));

    internal static string Printable(string text)
    {
        if (!text.Any(char.IsControl)) return text;
        var printable = new StringBuilder(text.Length + 8);
        foreach (var c in text)
            if (char.IsControl(c)) printable.Append(@"\x").Append(((int)c).ToString("x2"));
            else printable.Append(c);
        return printable.ToString();
    }

    public static int Report(CommonSettings settings, string verb, AdminResult result, string? id)
    {
        if (settings.Json) WriteJson(new { done = result.Done, busy = result.Busy });
        else
        {
            foreach (var j in result.Done) Output.Line($"{j}: {verb}");
            foreach (var j in result.Busy) Output.Line($"{j}: not {verb}: a worker has it right now (it was due); try again");
        }
        if (result.Done.Count == 0 && result.Busy.Count == 0)
        {
            Console.Error.WriteLine(id is null ? "mtactl: nothing to do" : $"mtactl: no such deferred or held mail: {id}");
            return id is null ? ExitCodes.Ok : ExitCodes.Usage;
        }
        return ExitCodes.Ok;
    }
}

/// <summary><c>queue list</c>: mailq.</summary>
public sealed class QueueListCommand : AsyncCommand<QueueListCommand.Settings>
{
    /// <summary>Filters.</summary>
    public sealed class Settings : CommonSettings
    {
        /// <summary>Only this state.</summary>
        [CommandOption("--state <STATE>")]
        [Description("Only incoming, active, deferred, hold or bounce.")]
        public string? State { get; init; }

        /// <summary>Only this sender (substring).</summary>
        [CommandOption("--sender <TEXT>")]
        public string? Sender { get; init; }

        /// <summary>Only jobs with a recipient containing this.</summary>
        [CommandOption("--recipient <TEXT>")]
        public string? Recipient { get; init; }
    }

    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken ct)
    {
        var entries = (await Services.Administration(settings).ListAsync(ct))
            .Where(e => settings.State is null || e.State.Equals(settings.State, StringComparison.OrdinalIgnoreCase))
            .Where(e => settings.Sender is null || e.Sender.Contains(settings.Sender, StringComparison.OrdinalIgnoreCase))
            .Where(e => settings.Recipient is null || e.Recipients.Any(r => r.Contains(settings.Recipient, StringComparison.OrdinalIgnoreCase)))
            .ToList();
        if (settings.Json)
        {
            Output.WriteJson(entries);
            return ExitCodes.Ok;
        }
        if (entries.Count == 0)
        {
            Output.Line("Mail queue is empty");
            return ExitCodes.Ok;
        }
        var table = new Table().Border(TableBorder.Simple)
            .AddColumns("Id", "Arrival", "Size", "Sender", "Recipients", "State", "Next try / reason");
        foreach (var e in entries)
            table.AddRow(Output.Cell(e.Id), e.ArrivalTime.ToString("yyyy-MM-dd HH:mm:ss"), e.Size?.ToString() ?? "-", Output.Cell(e.Sender.Length == 0 ? "MAILER-DAEMON" : e.Sender),
                string.Join("\n", e.Recipients.Select(Output.Cell)), e.State,
                Output.Cell(string.Join(" ", new[] { e.Due?.ToString("yyyy-MM-dd HH:mm:ss"), e.Reason }.Where(x => x is not null))));
        // Piped into grep or less, a row stays on one line rather than wrapping at 80 columns.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 250;
        AnsiConsole.Write(table);
        Output.Line($"-- {entries.Count} job(s)");
        return ExitCodes.Ok;
    }
}

/// <summary>Settings of commands that take a queue id or job id.</summary>
public class IdSettings : CommonSettings
{
    /// <summary>A queue id (all its jobs) or a job id.</summary>
    [CommandArgument(0, "[ID]")]
    [Description("Queue id (every job of the message) or job id.")]
    public string? Id { get; init; }
}

/// <summary><c>queue show ID</c>.</summary>
public sealed class QueueShowCommand : AsyncCommand<IdSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, IdSettings settings, CancellationToken ct)
    {
        if (settings.Id is null) throw new ArgumentException("queue show needs an id");
        var jobs = await Services.Administration(settings).FindAsync(settings.Id, ct);
        if (jobs.Count == 0)
        {
            Console.Error.WriteLine($"mtactl: no such deferred or held mail: {settings.Id}");
            return ExitCodes.Usage;
        }
        if (settings.Json)
        {
            Output.WriteJson(jobs.Select(j => new { j.State, j.Reason, j.Due, Job = j.Job with { Content = null, Header = null }, Header = HeaderText(j) }));
            return ExitCodes.Ok;
        }
        foreach (var j in jobs)
        {
            Output.Line($"job:        {j.Job.JobId} ({j.State}, {j.Job.Attempt} attempt(s))");
            Output.Line($"queue id:   {j.Job.MessageId}");
            Output.Line($"arrival:    {j.Job.ArrivalTime:yyyy-MM-dd HH:mm:ss zzz}");
            Output.Line($"sender:     <{j.Job.Sender}>");
            foreach (var r in j.Job.Recipients) Output.Line($"recipient:  <{r}>");
            Output.Line($"next hop:   {j.Job.NextHop.Transport.ToString().ToLowerInvariant()}:{j.Job.NextHop.Host}{(j.Job.NextHop.Port is { } p ? ":" + p : "")}");
            if (j.Due is { } due) Output.Line($"next try:   {due:yyyy-MM-dd HH:mm:ss zzz}");
            if (j.Reason is not null) Output.Line($"reason:     {j.Reason}");
            foreach (var h in j.Job.History ?? []) Output.Line($"attempt:    {h}");
            Output.Line();
            Output.Lines(HeaderText(j) ?? "(header in the spool)");
        }
        return ExitCodes.Ok;
    }

    // The header as delivery will send it, when the job carries it (inline mail, or cleanup's new header).
    private static string? HeaderText(WaitingJob j)
    {
        var bytes = j.Job.Header ?? j.Job.Content;
        if (bytes is null) return null;
        var end = bytes.AsSpan().IndexOf("\r\n\r\n"u8);
        return Encoding.UTF8.GetString(bytes, 0, end < 0 ? Math.Min(bytes.Length, 16384) : end + 2);
    }
}

/// <summary><c>queue retry [ID|--all]</c>: postqueue -f / -i.</summary>
public sealed class QueueRetryCommand : AsyncCommand<QueueRetryCommand.Settings>
{
    /// <summary>An id or --all.</summary>
    public sealed class Settings : IdSettings
    {
        /// <summary>Every deferred job.</summary>
        [CommandOption("--all")]
        public bool All { get; init; }
    }

    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken ct)
    {
        if (settings.Id is null == !settings.All) throw new ArgumentException("queue retry needs an id or --all (not both)");
        return Output.Report(settings, "due now", await Services.Administration(settings).RetryAsync(settings.Id, ct), settings.Id);
    }
}

/// <summary><c>queue hold ID</c>.</summary>
public sealed class QueueHoldCommand : AsyncCommand<IdSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, IdSettings settings, CancellationToken ct)
        => Output.Report(settings, "held", await Services.Administration(settings).HoldAsync(settings.Id ?? throw new ArgumentException("queue hold needs an id"), ct), settings.Id);
}

/// <summary><c>queue release ID</c>.</summary>
public sealed class QueueReleaseCommand : AsyncCommand<IdSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, IdSettings settings, CancellationToken ct)
        => Output.Report(settings, "released", await Services.Administration(settings).ReleaseAsync(settings.Id ?? throw new ArgumentException("queue release needs an id"), ct), settings.Id);
}

/// <summary><c>queue delete ID|--all-deferred</c>: postsuper -d.</summary>
public sealed class QueueDeleteCommand : AsyncCommand<QueueDeleteCommand.Settings>
{
    /// <summary>An id or --all-deferred.</summary>
    public sealed class Settings : IdSettings
    {
        /// <summary>Every deferred job.</summary>
        [CommandOption("--all-deferred")]
        public bool AllDeferred { get; init; }
    }

    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken ct)
    {
        if (settings.Id is null == !settings.AllDeferred) throw new ArgumentException("queue delete needs an id or --all-deferred (not both)");
        var result = await Services.Administration(settings).DeleteAsync(settings.Id, settings.AllDeferred ? WaitingMail.Deferred : null, ct);
        return Output.Report(settings, "deleted", result, settings.Id);
    }
}

/// <summary><c>queue bounce ID [--reason TEXT]</c>: return deferred or held mail to its sender now.</summary>
public sealed class QueueBounceCommand : AsyncCommand<QueueBounceCommand.Settings>
{
    /// <summary>An id and the reason the sender reads.</summary>
    public sealed class Settings : IdSettings
    {
        /// <summary>The reason in the report, after <c>5.0.0</c>.</summary>
        [CommandOption("--reason <TEXT>")]
        [Description("The reason the sender's report gives (after 5.0.0).")]
        public string Reason { get; init; } = "returned to the sender by the postmaster";
    }

    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken ct)
    {
        if (settings.Reason.Any(char.IsControl)) throw new ArgumentException("the reason must be one line");
        var result = await Services.Administration(settings).BounceAsync(settings.Id ?? throw new ArgumentException("queue bounce needs an id"), settings.Reason, ct);
        return Output.Report(settings, "returned to the sender", result, settings.Id);
    }
}

/// <summary>Settings of the poison commands.</summary>
public sealed class PoisonSettings : CommonSettings
{
    /// <summary>Which stage's poison queue; all when not given (list only).</summary>
    [CommandOption("--queue <QUEUE>")]
    [Description("incoming, delivery, deferred, bounce or hold.")]
    public string? Queue { get; init; }
}

/// <summary><c>queue poison list</c>.</summary>
public sealed class PoisonListCommand : AsyncCommand<PoisonSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, PoisonSettings settings, CancellationToken ct)
    {
        var admin = Services.Administration(settings);
        var result = new List<object>();
        foreach (var queue in settings.Queue is null ? QueueNames.All : [settings.Queue])
        {
            var (first, count) = await admin.PoisonAsync(queue, ct);
            if (settings.Json) result.Add(new { queue, count, first = first.Select(m => new { m.MessageId, m.InsertedOn, m.DequeueCount, text = m.MessageText }) });
            else
            {
                Output.Line($"{queue}-poison: {count} message(s)");
                foreach (var m in first) Output.Line($"  {m.MessageId} {m.InsertedOn:yyyy-MM-dd HH:mm:ss} {Shorten(m.MessageText)}");
            }
        }
        if (settings.Json) Output.WriteJson(result);
        return ExitCodes.Ok;
    }

    private static string Shorten(string text) => text.Length > 100 ? text[..100] + "..." : text;
}

/// <summary><c>queue poison requeue --queue Q</c>.</summary>
public sealed class PoisonRequeueCommand : AsyncCommand<PoisonSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, PoisonSettings settings, CancellationToken ct)
    {
        var queue = settings.Queue ?? throw new ArgumentException("queue poison requeue needs --queue");
        var moved = await Services.Administration(settings).RequeuePoisonAsync(queue, ct);
        if (settings.Json) Output.WriteJson(new { queue, moved });
        else Output.Line($"{queue}-poison: {moved} message(s) moved back to {queue}");
        return ExitCodes.Ok;
    }
}

/// <summary><c>queue poison purge --queue Q</c>.</summary>
public sealed class PoisonPurgeCommand : AsyncCommand<PoisonSettings>
{
    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, PoisonSettings settings, CancellationToken ct)
    {
        var queue = settings.Queue ?? throw new ArgumentException("queue poison purge needs --queue");
        var purged = await Services.Administration(settings).PurgePoisonAsync(queue, ct);
        if (settings.Json) Output.WriteJson(new { queue, purged });
        else Output.Line($"{queue}-poison: {purged} message(s) deleted");
        return ExitCodes.Ok;
    }
}

using Mta.Cli;
using Mta.Cli.Commands;
using Spectre.Console;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(c =>
{
    c.SetApplicationName("mtactl");
    c.PropagateExceptions();
    c.AddBranch("queue", q =>
    {
        q.SetDescription("Look at and act on the mail queue (mailq, postqueue, postsuper).");
        q.AddCommand<QueueListCommand>("list").WithDescription("List waiting and queued mail (mailq).");
        q.AddCommand<QueueShowCommand>("show").WithDescription("Show one message's jobs, envelope and header.");
        q.AddCommand<QueueRetryCommand>("retry").WithDescription("Make deferred mail due now (postqueue -f / -i).");
        q.AddCommand<QueueHoldCommand>("hold").WithDescription("Put deferred mail on hold (postsuper -h).");
        q.AddCommand<QueueReleaseCommand>("release").WithDescription("Release held mail for delivery (postsuper -H).");
        q.AddCommand<QueueDeleteCommand>("delete").WithDescription("Delete deferred or held mail, no bounce (postsuper -d).");
        q.AddCommand<QueueBounceCommand>("bounce").WithDescription("Return deferred or held mail to its sender now, as failed.");
        q.AddBranch("poison", p =>
        {
            p.SetDescription("Messages a stage failed on too often (infrastructure failures).");
            p.AddCommand<PoisonListCommand>("list").WithDescription("Count and show the first messages of each poison queue.");
            p.AddCommand<PoisonRequeueCommand>("requeue").WithDescription("Move a poison queue's messages back to their queue.");
            p.AddCommand<PoisonPurgeCommand>("purge").WithDescription("Empty a poison queue.");
        });
    });
    c.AddBranch("suppression", s =>
    {
        s.SetDescription("Addresses mail is no longer sent to, per tenant (Mta:Suppression).");
        s.AddCommand<SuppressionListCommand>("list").WithDescription("List the entries.");
        s.AddCommand<SuppressionAddCommand>("add").WithDescription("Suppress an address (category manual).");
        s.AddCommand<SuppressionRemoveCommand>("remove").WithDescription("Send to an address again.");
        s.AddCommand<SuppressionExportCommand>("export").WithDescription("Write the list as CSV (address,category,added,expires,reason).");
        s.AddCommand<SuppressionImportCommand>("import").WithDescription("Read an export, or one address per line, from a file or standard input.");
    });
    c.AddBranch("config", x =>
    {
        x.SetDescription("The effective configuration (postconf -n).");
        x.AddCommand<ConfigCheckCommand>("check").WithDescription("Load settings and every map and key file; report each error with file and line.");
    });
});

try
{
    return await app.RunAsync(args);
}
catch (CommandAppException e)
{
    AnsiConsole.MarkupLineInterpolated($"[red]mtactl: {e.Message}[/]");
    return ExitCodes.Usage;
}
catch (Exception e) when (ExitCodes.ForFailure(e) is { } code)
{
    Console.Error.WriteLine($"mtactl: {ExitCodes.Describe(e)}");
    return code;
}

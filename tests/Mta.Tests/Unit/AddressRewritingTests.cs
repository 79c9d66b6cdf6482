using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mta.Mail.Cleanup;
using Mta.Mail.Configuration;
using Mta.Mail.Rewriting;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>Canonical and virtual alias maps, looked up as canonical(5) and virtual(5) describe; and the checks tables' syntax.</summary>
public sealed class AddressRewritingTests
{
    private readonly string _folder = TestEnvironment.TempFolder("maps");
    private readonly LogCapture _log = new();

    private string Map(string name, string text)
    {
        var path = Path.Combine(_folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    private AddressRewriter Rewriter(Action<MtaOptions> configure)
    {
        var o = new MtaOptions { LocalDomains = ["example.org", "example.net"] };
        configure(o);
        return new AddressRewriter(Options.Create(o), new LoggerFactory([_log]).CreateLogger<AddressRewriter>());
    }

    private static string[] Final(AddressRewriter r, params string[] rcpts) => r.RewriteRecipients(rcpts).Recipients.Select(x => x.Address).ToArray();

    [Fact]
    public void Canonical_lookups_go_from_the_full_address_to_the_domain_and_keep_unmatched_extensions()
    {
        var map = Map("canonical", """
            joe@example.org        joseph.smith@example.org
            mary                   mary.jones@example.com
            @old.example           @example.org
            sales+vip@example.org  vip-desk@example.org
            """);
        var r = Rewriter(o => { o.CanonicalMapsFile = map; o.RecipientDelimiter = "+"; });
        Assert.Equal("joseph.smith@example.org", r.RewriteSender("joe@example.org"));
        Assert.Equal("joseph.smith+list@example.org", r.RewriteSender("joe+list@example.org")); // extension carried over
        Assert.Equal("mary.jones@example.com", r.RewriteSender("mary@example.net"));           // bare user: local domains only
        Assert.Equal("mary@elsewhere.test", r.RewriteSender("mary@elsewhere.test"));
        Assert.Equal("anyone@example.org", r.RewriteSender("anyone@old.example"));             // domain rewrite keeps the user
        Assert.Equal("vip-desk@example.org", r.RewriteSender("sales+vip@example.org"));        // the full key wins
        Assert.Equal("", r.RewriteSender(""));                                                   // the null sender stays null
        Assert.Equal(["joseph.smith@example.org"], Final(r, "JOE@example.org"));                // keys are case-insensitive
    }

    [Fact]
    public void Sender_and_recipient_maps_apply_only_to_their_side_and_before_the_shared_map()
    {
        var sender = Map("sender", "a@example.org b@example.org\n");
        var recipient = Map("recipient", "a@example.org c@example.org\n");
        var both = Map("canonical", "b@example.org final-b@example.org\nc@example.org final-c@example.org\n");
        var r = Rewriter(o => { o.SenderCanonicalMapsFile = sender; o.RecipientCanonicalMapsFile = recipient; o.CanonicalMapsFile = both; });
        Assert.Equal("final-b@example.org", r.RewriteSender("a@example.org"));
        Assert.Equal(["final-c@example.org"], Final(r, "a@example.org"));
    }

    [Fact]
    public void Virtual_aliases_expand_recursively_with_catch_alls_without_duplicates_and_stop_at_loops()
    {
        var map = Map("virtual", """
            all@example.org      staff@example.org, board@example.org
            staff@example.org    ann@remote.test,
                                 bob@remote.test
            board@example.org    bob@remote.test, chair@example.org
            chair@example.org    chair@example.org, all@example.org
            @catch.example       postmaster@example.org
            @alias.example       @example.net
            """);
        var r = Rewriter(o => o.VirtualAliasMapsFile = map);
        // chair expands to itself (delivered as chair) and back to all (a loop: kept as an address, not expanded again).
        Assert.Equal(["ann@remote.test", "bob@remote.test", "chair@example.org", "all@example.org"], Final(r, "all@example.org"));
        Assert.Equal(["postmaster@example.org"], Final(r, "whoever@catch.example"));
        Assert.Equal(["someone@example.net"], Final(r, "someone@alias.example"));
        var originals = r.RewriteRecipients(["staff@example.org", "bob@remote.test"]).Recipients;
        Assert.Equal([("ann@remote.test", "staff@example.org"), ("bob@remote.test", "staff@example.org")], originals);
    }

    [Fact]
    public void Nesting_beyond_the_recursion_limit_is_a_failure_for_that_recipient()
    {
        var map = Map("virtual", string.Concat(Enumerable.Range(0, 30).Select(i => $"l{i}@example.org l{i + 1}@example.org\n")));
        var r = Rewriter(o => { o.VirtualAliasMapsFile = map; o.VirtualAliasRecursionLimit = 10; });
        var result = r.RewriteRecipients(["l0@example.org", "l25@example.org"]);
        Assert.Equal(["l30@example.org"], result.Recipients.Select(x => x.Address));
        var failure = Assert.Single(result.Failures);
        Assert.Equal("l0@example.org", failure.Recipient);
        Assert.StartsWith("5.4.6 unreasonable virtual_alias_maps map nesting", failure.Reason);
    }

    [Fact]
    public async Task A_changed_map_is_read_again_and_a_broken_one_leaves_the_last_good_version_in_use()
    {
        var path = Map("virtual", "a@example.org one@remote.test\n");
        var r = Rewriter(o => o.VirtualAliasMapsFile = path);
        Assert.Equal(["one@remote.test"], Final(r, "a@example.org"));

        await Task.Delay(1100); // the file's time stamp is looked at once a second
        File.WriteAllText(path, "a@example.org two@remote.test\n");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(1));
        Assert.Equal(["two@remote.test"], Final(r, "a@example.org"));

        await Task.Delay(1100);
        File.WriteAllText(path, "a@example.org\n");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(2));
        Assert.Equal(["two@remote.test"], Final(r, "a@example.org"));
        Assert.Single(_log.Matching("could not be read", "virtual:1: expected 'key value'"));
    }

    [Theory]
    [InlineData("a@example.org\n", "map:1: expected 'key value', got 'a@example.org'")]
    [InlineData("  continued\n", "map:1: continuation line without an entry before it")]
    [InlineData("a b\n# note\na c\n", "map:3: duplicate entry 'a' (first on line 1)")]
    public void Map_errors_name_the_file_and_line(string text, string error)
    {
        var e = Assert.Throws<FormatException>(() => LookupTable.Load(Map("map", text)));
        Assert.EndsWith(error, e.Message);
    }

    [Theory]
    [InlineData("Subject: x\n", "checks:1: expected '/pattern/ ACTION'")]
    [InlineData("/abc REJECT\n", "checks:1: pattern without a closing '/'")]
    [InlineData("/abc/q REJECT\n", "checks:1: unknown flag 'q'")]
    [InlineData("# ok\n/abc/\n", "checks:2: missing action")]
    [InlineData("/abc/ BOUNCE\n", "checks:1: unknown action 'BOUNCE'")]
    [InlineData("/a(bc/ REJECT\n", "checks:1: bad pattern")]
    public void Checks_errors_name_the_file_and_line(string text, string error)
    {
        var e = Assert.Throws<FormatException>(() => ContentChecks.Load(Map("checks", text), allowIgnore: true));
        Assert.Contains(error, e.Message);
    }

    [Fact]
    public void Checks_are_case_insensitive_unless_i_is_given_and_negation_and_ignore_work_as_in_postfix()
    {
        var checks = ContentChecks.Load(Map("checks", "/^subject: A/i WARN exact\n/^subject: a/ HOLD any case\n!/^X-/ DUNNO\n/^X-Secret/ IGNORE\n"), allowIgnore: true);
        Assert.Equal(CheckAction.Hold, checks.Match("Subject: ABC", new CheckBudget())!.Action);
        Assert.Equal(CheckAction.Warn, checks.Match("subject: Abc", new CheckBudget())!.Action);
        Assert.Equal(CheckAction.Dunno, checks.Match("From: x", new CheckBudget())!.Action);
        Assert.Equal(CheckAction.Ignore, checks.Match("X-Secret: 1", new CheckBudget())!.Action);
        Assert.Null(checks.Match("X-Other: 1", new CheckBudget()));
        Assert.Throws<FormatException>(() => ContentChecks.Load(Map("body", "/x/ IGNORE\n"), allowIgnore: false));
    }
}

using Microsoft.Extensions.Configuration;
using Mta.Mail.Classification;
using Xunit;

namespace Mta.Tests.Unit;

/// <summary>
/// Bounce classification over a corpus of real-world replies (Data/bounce-replies.txt, written from the large
/// providers' public documentation of their replies, Postfix's texts and our own reasons), and the operator's rules.
/// </summary>
public sealed class BounceClassifierTests
{
    public static TheoryData<string, string> Corpus()
    {
        var data = new TheoryData<string, string>();
        foreach (var line in File.ReadAllLines(Path.Combine(Peers.TestEnvironment.RepoRoot, "tests", "Mta.Tests", "Unit", "Data", "bounce-replies.txt")))
            if (line.Length > 0 && line[0] != '#' && line.Split('\t', 2) is [var category, var reply])
                data.Add(category, reply);
        return data;
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Each_reply_of_the_corpus_gets_its_category(string category, string reply)
        => Assert.Equal(category, BounceClassifier.BuiltIn.Classify(reply).Name());

    [Fact]
    public void The_corpus_covers_every_category() =>
        Assert.Equal(Enum.GetValues<BounceCategory>().Select(c => c.Name()).Order(), Corpus().Select(row => (string)row[0]).Distinct().Order());

    [Theory]
    [InlineData("550 5.1.1 <x@example.net>: no", 550, 1, 1)]
    [InlineData("552-5.3.4 Your message exceeded", 552, 3, 4)]
    [InlineData("4.4.1 connect to x[192.0.2.1]:25: Connection refused", null, 4, 1)]
    [InlineData("554 30 Sorry, your message size exceeds 41943040 bytes.", 554, null, null)]
    [InlineData("451 4.7.500 Server busy", 451, 7, 500)]
    [InlineData("421 mx.example.net 192.0.2.1 is not 5.5.5.5", 421, null, null)] // an address is not a code
    public void Codes_are_read_where_replies_put_them(string reply, int? basic, int? subject, int? detail)
        => Assert.Equal((basic, subject, detail), BounceClassifier.CodesOf(reply));

    [Fact]
    public void The_operators_rules_come_first_and_a_bad_one_names_its_line()
    {
        var folder = Peers.TestEnvironment.TempFolder("bounce-rules");
        var rules = Path.Combine(folder, "bounce_classification");
        File.WriteAllText(rules, "# a provider that says 5.1.1 when it means slow down\n/5\\.1\\.1 .*come back later/ rate_limited\n!/./ other\n");
        var classifier = BounceClassifier.Load(rules);
        Assert.Equal(BounceCategory.RateLimited, classifier.Classify("550 5.1.1 Busy, come back later"));
        Assert.Equal(BounceCategory.InvalidRecipient, classifier.Classify("550 5.1.1 <x@example.net>: User unknown"));

        File.WriteAllText(rules, "/x/ rate_limited\n/y/ slow\n");
        var error = Assert.Throws<FormatException>(() => BounceClassifier.Load(Path.Combine(folder, "bounce_classification")).Classify("x"));
        Assert.Contains("bounce_classification:2: unknown category 'slow'", error.Message);
    }

    [Theory]
    [InlineData("452 4.7.28 Mail flood detected from your domain", true)] // only the classification knows X.7.28
    [InlineData("421 4.3.2 Service shutting down", true)]                  // every 421, as before
    [InlineData("450 4.7.1 Error: too much mail from 192.0.2.1", true)]
    [InlineData("450 4.2.0 Mailbox busy", false)]
    [InlineData("550 5.7.28 Mail flood detected", false)]                 // a 5xx is a refusal, not a request to slow down
    public void Traffic_shaping_slows_down_for_what_the_classification_calls_rate_limited(string reply, bool throttling)
    {
        var storage = Mta.Mail.Configuration.StorageConnection.From(new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["AzureWebJobsStorage"] = "UseDevelopmentStorage=true" }).Build());
        var options = Microsoft.Extensions.Options.Options.Create(new Mta.Mail.Configuration.MtaOptions { ShapingThrottlePattern = "too much mail" });
        using var metrics = new Mta.Mail.Metrics.PipelineMetrics();
        using var shaper = new Mta.Mail.Shaping.TrafficShaper(storage, options, TimeProvider.System, metrics,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Mta.Mail.Shaping.TrafficShaper>.Instance, BounceClassifier.BuiltIn);
        Assert.Equal(throttling, shaper.IsThrottling(reply));
    }
}

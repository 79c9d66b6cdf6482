using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("Mta.Tests.Peers.LongestFirst", "Mta.Tests")]

namespace Mta.Tests.Peers;

/// <summary>
/// A test class that takes tens of seconds (processes, retries, timeouts): started before the short ones, the longest
/// first, so the run does not end with one long class alone in its lane while the others idle.
/// </summary>
/// <param name="seconds">About how long the class takes beside three others on a 2-core machine: an ordering hint only.</param>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RunsLongAttribute(int seconds) : Attribute
{
    /// <summary>The hint.</summary>
    public int Seconds { get; } = seconds;
}

/// <summary>
/// A class that needs no published app (no functions worker, no published ingress) and keeps the cores busy: started
/// right after the longest class, which asks for the functions app's publish first. In a fresh clone that publish takes
/// half a minute, and the long classes behind it can only wait for it; these classes use the cores meanwhile.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RunsWhilePublishingAttribute : Attribute;

/// <summary>
/// Orders test collections: the longest class first, then the classes marked <see cref="RunsWhilePublishingAttribute"/>,
/// then the rest; each group longest first by <see cref="RunsLongAttribute"/>, then by name.
/// </summary>
public sealed class LongestFirst : ITestCollectionOrderer
{
    /// <inheritdoc />
    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections)
    {
        var byLength = testCollections.OrderByDescending(Seconds).ThenBy(c => c.DisplayName, StringComparer.Ordinal).ToList();
        var rest = byLength.Skip(1).ToList();
        return byLength.Take(1).Concat(rest.Where(Marked<RunsWhilePublishingAttribute>)).Concat(rest.Where(c => !Marked<RunsWhilePublishingAttribute>(c)));
    }

    private static int Seconds(ITestCollection collection)
        => Hint<RunsLongAttribute>(collection)?.GetConstructorArguments().OfType<int>().FirstOrDefault() ?? 0;

    private static bool Marked<T>(ITestCollection collection) where T : Attribute => Hint<T>(collection) is not null;

    private static IAttributeInfo? Hint<T>(ITestCollection collection) where T : Attribute
    {
        // A class's own collection is named after it: "Test collection for Namespace.Class".
        const string prefix = "Test collection for ";
        if (!collection.DisplayName.StartsWith(prefix, StringComparison.Ordinal)) return null;
        var type = collection.TestAssembly.Assembly.GetType(collection.DisplayName[prefix.Length..]);
        return type?.GetCustomAttributes(typeof(T)).FirstOrDefault();
    }
}

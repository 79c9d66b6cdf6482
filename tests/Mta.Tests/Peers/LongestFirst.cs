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

/// <summary>Orders test collections: classes marked <see cref="RunsLongAttribute"/> first, longest first, then by name.</summary>
public sealed class LongestFirst : ITestCollectionOrderer
{
    /// <inheritdoc />
    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections)
        => testCollections.OrderByDescending(Seconds).ThenBy(c => c.DisplayName, StringComparer.Ordinal);

    private static int Seconds(ITestCollection collection)
    {
        // A class's own collection is named after it: "Test collection for Namespace.Class".
        const string prefix = "Test collection for ";
        if (!collection.DisplayName.StartsWith(prefix, StringComparison.Ordinal)) return 0;
        var type = collection.TestAssembly.Assembly.GetType(collection.DisplayName[prefix.Length..]);
        var hint = type?.GetCustomAttributes(typeof(RunsLongAttribute)).FirstOrDefault();
        return hint?.GetConstructorArguments().OfType<int>().FirstOrDefault() ?? 0;
    }
}

using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("Mta.Tests.Peers.LongestFirst", "Mta.Tests")]

namespace Mta.Tests.Peers;

/// <summary>
/// A test class that takes tens of seconds (processes, retries, timeouts): started before the short ones, so the run
/// does not end with one long class alone in its lane while the others idle.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RunsLongAttribute : Attribute;

/// <summary>Orders test collections: classes marked <see cref="RunsLongAttribute"/> first, then by name.</summary>
public sealed class LongestFirst : ITestCollectionOrderer
{
    /// <inheritdoc />
    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections)
        => testCollections.OrderBy(c => RunsLong(c) ? 0 : 1).ThenBy(c => c.DisplayName, StringComparer.Ordinal);

    private static bool RunsLong(ITestCollection collection)
    {
        // A class's own collection is named after it: "Test collection for Namespace.Class".
        const string prefix = "Test collection for ";
        if (!collection.DisplayName.StartsWith(prefix, StringComparison.Ordinal)) return false;
        var type = collection.TestAssembly.Assembly.GetType(collection.DisplayName[prefix.Length..]);
        return type?.GetCustomAttributes(typeof(RunsLongAttribute)).Any() == true;
    }
}

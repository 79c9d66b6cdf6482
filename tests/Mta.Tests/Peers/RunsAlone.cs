using Xunit;

namespace Mta.Tests.Peers;

/// <summary>
/// Tests that measure or change the whole test process (its allocations, meters, environment variables) or load the
/// whole machine run in this collection, which xunit runs after the others and on its own; every other test class
/// runs beside three more.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RunsAlone
{
    /// <summary>The collection's name, for <c>[Collection(RunsAlone.Name)]</c>.</summary>
    public const string Name = "runs alone";
}

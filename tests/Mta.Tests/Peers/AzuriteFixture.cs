using Xunit;

namespace Mta.Tests.Peers;

/// <summary>One storage account for all the tests of a class (xunit runs a class's tests one after another).</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    /// <summary>The running Azurite.</summary>
    public AzuriteAccount Azurite { get; private set; } = null!;

    /// <inheritdoc />
    public async Task InitializeAsync() => Azurite = await Peers.Azurite.LeaseAsync();

    /// <inheritdoc />
    public async Task DisposeAsync() => await Azurite.DisposeAsync();
}

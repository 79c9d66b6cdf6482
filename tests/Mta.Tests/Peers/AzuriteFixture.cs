using Xunit;

namespace Mta.Tests.Peers;

/// <summary>One Azurite for all the tests of a class (xunit runs a class's tests one after another).</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    /// <summary>The running Azurite.</summary>
    public Azurite Azurite { get; private set; } = null!;

    /// <inheritdoc />
    public async Task InitializeAsync() => Azurite = await Azurite.StartAsync();

    /// <inheritdoc />
    public async Task DisposeAsync() => await Azurite.DisposeAsync();
}

using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mta.Ingress;
using Mta.Ingress.Auth;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Unit;

public sealed class SaslUsersTests
{
    [Fact]
    public void Hashes_verify_and_are_salted()
    {
        var a = SaslUsers.Hash("pw");
        Assert.NotEqual(a, SaslUsers.Hash("pw"));
        Assert.StartsWith("$pbkdf2-sha256$600000$", a);
        var file = Path.Combine(TestEnvironment.TempFolder("users"), "users");
        File.WriteAllText(file, $"bob:{a}\n");
        var users = new SaslUsers(Options.Create(new IngressOptions { UsersFile = file }), NullLogger<SaslUsers>.Instance);
        Assert.True(users.Verify("bob", "pw"));
        Assert.False(users.Verify("bob", "PW"));
        Assert.False(users.Verify("nobody", "pw"));
    }

    [Theory]
    [InlineData("bob:plaintext")]
    [InlineData("bob:$pbkdf2-sha256$10$c2FsdA==$aGFzaA==")]
    [InlineData("bob:$md5$1000$c2FsdA==$aGFzaA==")]
    [InlineData(":$pbkdf2-sha256$600000$c2FsdA==$aGFzaA==")]
    [InlineData("bob:$pbkdf2-sha256$600000$not base64$aGFzaA==")]
    public void Rejects_plain_weak_or_malformed_entries_with_the_line(string line)
    {
        var e = Assert.Throws<FormatException>(() => SaslUsers.Parse(["# users", line], "/etc/mta/users"));
        Assert.StartsWith("/etc/mta/users:2:", e.Message);
    }
}

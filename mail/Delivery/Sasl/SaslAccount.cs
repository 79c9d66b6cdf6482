namespace Mta.Mail.Delivery.Sasl;

/// <summary>
/// A login at a next hop (Postfix's <c>smtp_sasl_password_maps</c> value, <c>user:password</c>). The password is never
/// printed: <see cref="ToString"/> names the user only, so a log line or an exception cannot carry it by accident.
/// </summary>
/// <param name="User">The login name.</param>
/// <param name="Password">The password, or for XOAUTH2 the bearer token.</param>
public sealed record SaslAccount(string User, string Password)
{
    /// <summary>The user only.</summary>
    public override string ToString() => User;

    /// <summary>Which entry of the map this came from (the lookup key), for logs.</summary>
    public string Key { get; init; } = "";
}

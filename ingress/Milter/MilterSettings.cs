namespace Mta.Ingress.Milter;

/// <summary>The configured milters, parsed once: where each is, its settings, and the macros per event.</summary>
/// <param name="Endpoints">The milters, in the order they are called.</param>
/// <param name="MacroNames">Macro names per event (Postfix's <c>milter_*_macros</c>).</param>
/// <param name="DaemonName">The <c>{daemon_name}</c> macro (Postfix's <c>milter_macro_daemon_name</c>).</param>
public sealed record MilterSettings(IReadOnlyList<MilterEndpoint> Endpoints, IReadOnlyDictionary<MilterCommand, string[]> MacroNames, string DaemonName)
{
    /// <summary>The milter settings of <paramref name="options"/>; null when no milter is configured. Throws <see cref="FormatException"/> on a bad list.</summary>
    public static MilterSettings? From(IngressOptions options, string hostname)
    {
        var defaults = MilterEndpoint.Defaults(MilterEndpoint.ParseAction(options.MilterDefaultAction),
            TimeSpan.FromSeconds(options.MilterConnectTimeoutSeconds), TimeSpan.FromSeconds(options.MilterCommandTimeoutSeconds),
            TimeSpan.FromSeconds(options.MilterContentTimeoutSeconds), (uint)options.MilterProtocol);
        var endpoints = MilterEndpoint.ParseList(options.Milters, defaults);
        return endpoints.Count == 0 ? null
            : new MilterSettings(endpoints, MilterMacros.Names(options.MilterMacros), string.IsNullOrEmpty(options.MilterMacroDaemonName) ? hostname : options.MilterMacroDaemonName);
    }
}

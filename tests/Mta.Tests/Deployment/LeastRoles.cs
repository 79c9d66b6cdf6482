namespace Mta.Tests.Deployment;

/// <summary>The smallest set of built-in storage data roles that allows a set of permissions.</summary>
public static class LeastRoles
{
    /// <summary>
    /// The combination of built-in roles that meets all of <paramref name="needs"/> with the fewest permissions in
    /// all (then the fewest roles); null when none does. There are few enough roles to try every combination.
    /// </summary>
    public static IReadOnlyList<string>? For(IReadOnlyCollection<Need> needs)
    {
        var roles = BuiltInStorageRoles.All.Keys.Order(StringComparer.Ordinal).ToArray();
        IReadOnlyList<string>? best = null;
        var bestSize = int.MaxValue;
        for (var mask = 0; mask < 1 << roles.Length; mask++)
        {
            var chosen = roles.Where((_, i) => (mask & (1 << i)) != 0).ToList();
            var allowed = BuiltInStorageRoles.PermissionsOf(chosen);
            if (!needs.All(n => n.MetBy(allowed))) continue;
            if (allowed.Count < bestSize || allowed.Count == bestSize && chosen.Count < best!.Count)
                (best, bestSize) = (chosen, allowed.Count);
        }
        return best;
    }
}

using System.Text.RegularExpressions;
using Mta.Tests.Peers;
using Xunit;
using Xunit.Abstractions;

namespace Mta.Tests.Deployment;

/// <summary>
/// The storage roles of each identity (infra/azure/storage-roles.json) against what each part really does to storage:
/// its requests recorded on the wire while it runs against Azurite (<see cref="StorageWorkload"/>), plus what KEDA's
/// scaler and the real Functions host do (<see cref="UnrecordedStorageUse"/>). Every request must be allowed, and no
/// smaller set of built-in roles may allow them all. The docs, the azure overlay and the role script must say the same.
/// </summary>
public sealed class StorageRolesTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task Each_identity_holds_exactly_the_storage_roles_its_requests_need()
    {
        var used = new Dictionary<string, IReadOnlyList<StorageRequest>>(await StorageWorkload.RunAsync());
        used["functions"] = [.. used["functions"], .. UnrecordedStorageUse.FunctionsHost()];
        used["keda"] = UnrecordedStorageUse.KedaScaler();
        var file = StorageRolesFile.Read();
        Assert.Equal(used.Keys.Order(), file.Keys.Order());

        var problems = used.SelectMany(u => Problems(u.Key, u.Value, file[u.Key].Roles)).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    // A need the roles do not meet, or roles beyond the least that meet them all.
    private IEnumerable<string> Problems(string identity, IReadOnlyList<StorageRequest> requests, IReadOnlyList<string> granted)
    {
        var needed = Needed(requests);
        Report(identity, needed);
        var allowed = BuiltInStorageRoles.PermissionsOf(granted);
        var missing = needed.Keys.Where(n => !n.MetBy(allowed)).Select(n => $"{identity} lacks {n}, needed by {needed[n]}").ToList();
        if (missing.Count > 0) return missing;
        var least = LeastRoles.For(needed.Keys);
        return least is not null && BuiltInStorageRoles.PermissionsOf(least).Count < allowed.Count
            ? [$"{identity} holds more than it uses: [{string.Join(", ", granted)}] where [{string.Join(", ", least)}] would do"]
            : [];
    }

    // Each need with the first request that had it (for the message when one is not met).
    private static Dictionary<Need, StorageRequest> Needed(IEnumerable<StorageRequest> requests)
    {
        var needed = new Dictionary<Need, StorageRequest>();
        foreach (var request in requests)
            foreach (var need in StoragePermissions.Required(request))
                needed.TryAdd(need, request);
        return needed;
    }

    private void Report(string identity, Dictionary<Need, StorageRequest> needed)
    {
        output.WriteLine($"{identity}:");
        foreach (var (need, request) in needed.OrderBy(p => p.Key.ToString(), StringComparer.Ordinal))
            output.WriteLine($"  {need}  e.g. {request}");
    }

    [Fact]
    public void The_deploy_docs_table_lists_the_roles_of_the_file()
    {
        var docs = File.ReadAllLines(Path.Combine(TestEnvironment.RepoRoot, "docs", "deploy.md"));
        foreach (var identity in StorageRolesFile.Read().Values)
        {
            var row = docs.SingleOrDefault(l => l.StartsWith($"| `{identity.Name}`", StringComparison.Ordinal));
            Assert.True(row is not null, $"docs/deploy.md has no row for {identity.Name}");
            var roles = row!.Split('|')[3].Split(',', StringSplitOptions.TrimEntries);
            Assert.Equal(identity.Roles.Order(), roles.Order());
        }
    }

    [SkippableFact]
    public async Task The_azure_overlay_gives_each_part_the_identity_of_the_file()
    {
        var m = await Manifests.RenderAsync("azure");
        var file = StorageRolesFile.Read().Values;
        var clientIds = new Dictionary<string, string>();
        foreach (var identity in file.Where(i => i.ServiceAccount?.StartsWith("mta/", StringComparison.Ordinal) == true))
        {
            var account = m.Find("ServiceAccount", identity.ServiceAccount!["mta/".Length..]);
            Assert.True(account is not null, $"no service account {identity.ServiceAccount} for {identity.Name}");
            clientIds[identity.Name] = account!["metadata"]["annotations"]["azure.workload.identity/client-id"].Text!;
        }
        foreach (var d in m.OfKind("Deployment"))
        {
            var pod = d["spec"]["template"]["spec"];
            var identity = file.Single(i => i.ServiceAccount == "mta/" + pod["serviceAccountName"].Text);
            var env = pod["containers"][0]["env"].Items.Single(e => e["name"].Text == "AzureWebJobsStorage__clientId");
            Assert.Equal(clientIds[identity.Name], env["value"].Text); // the identity its service account is federated with
        }
        foreach (var identity in file.Where(i => i.TriggerAuthentication is not null))
            clientIds[identity.Name] = m.Find("TriggerAuthentication", identity.TriggerAuthentication!["mta/".Length..])!["spec"]["podIdentity"]["identityId"].Text!;
        Assert.Equal(new[] { "functions", "ingress", "keda" }, clientIds.Keys.Order());
        Assert.All(clientIds.Values, id => Assert.Matches("^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", id));
        Assert.Equal(clientIds.Count, clientIds.Values.Distinct().Count());
    }

    [SkippableFact]
    public async Task The_role_script_grants_the_roles_of_the_file_and_federates_the_service_accounts()
    {
        TestEnvironment.RequireTool("jq");
        var script = Path.Combine(TestEnvironment.RepoRoot, "infra", "azure", "assign-roles.sh");
        var (exit, printed) = await Integration.EndToEndTests.RunAsync("bash", script, "--dry-run", "--resource-group", "rg",
            "--account", "account", "--cluster", "aks", "--operators", "operators-group");
        Assert.True(exit == 0, printed);
        var lines = printed.Split('\n').Select(l => Regex.Replace(l, @"\\(.)", "$1")).ToList(); // undo printf %q
        foreach (var identity in StorageRolesFile.Read().Values)
        {
            var assignee = identity.ManagedIdentity is { } mi ? $"<principal id of {mi}>" : "operators-group";
            var granted = lines.Select(l => Regex.Match(l, @"^az role assignment create --assignee-object-id (.+?) (?:--assignee-principal-type \S+ )?--role (.+?) --scope"))
                .Where(g => g.Success && g.Groups[1].Value == assignee).Select(g => g.Groups[2].Value);
            Assert.Equal(identity.Roles.Order(), granted.Order());
            if (identity.ServiceAccount is { } sa)
                Assert.Contains(lines, l => l.Contains($"--identity-name {identity.ManagedIdentity} ", StringComparison.Ordinal)
                    && l.Contains($"--subject system:serviceaccount:{sa.Replace('/', ':')} ", StringComparison.Ordinal));
        }
    }
}

using Microsoft.Extensions.Configuration;
using System.Text.Json;
using Mta.Tests.Peers;
using Xunit;

namespace Mta.Tests.Deployment;

/// <summary>
/// The Kubernetes and KEDA manifests, checked without a cluster: every overlay renders, validates
/// against the Kubernetes schemas and KEDA's own CRD schemas, and agrees with the code it deploys.
/// </summary>
public sealed class ManifestTests
{
    public static TheoryData<string> Overlays => new() { "dev", "azure" };

    private static async Task<(int Exit, string Output)> ValidateAsync(string yaml)
    {
        var node = TestEnvironment.RequireTool("node");
        var file = Path.Combine(TestEnvironment.TempFolder("render"), "manifests.yaml");
        await File.WriteAllTextAsync(file, yaml);
        var script = Path.Combine(TestEnvironment.RepoRoot, "infra", "validate", "validate-manifests.mjs");
        var crds = Path.Combine(TestEnvironment.RepoRoot, "infra", "validate", "keda-crds");
        return await Integration.EndToEndTests.RunAsync("/bin/sh", "-c", $"'{node}' '{script}' '{crds}' < '{file}'");
    }

    [SkippableTheory]
    [MemberData(nameof(Overlays))]
    public async Task Overlay_renders_and_validates_against_kubernetes_and_keda_schemas(string overlay)
    {
        var m = await Manifests.RenderAsync(overlay);
        var (exit, output) = await ValidateAsync(m.Yaml);
        Assert.True(exit == 0, output);
        Assert.Contains($"valid: {m.Objects.Count} objects", output);
        Assert.Equal(5, m.OfKind("ScaledObject").Count());
        Assert.Single(m.OfKind("TriggerAuthentication"));
    }

    [SkippableFact]
    public async Task The_validator_rejects_what_a_cluster_would()
    {
        var m = await Manifests.RenderAsync("dev");
        var typo = m.Yaml.Replace("  pollingInterval: 5", "  pollingIntervall: 5");
        var (exit, output) = await ValidateAsync(typo);
        Assert.NotEqual(0, exit);
        Assert.Contains("ScaledObject/mta-cleanup", output);
        var badType = m.Yaml.Replace("replicas: 0", "replicas: zero");
        (exit, output) = await ValidateAsync(badType);
        Assert.NotEqual(0, exit);
        Assert.Contains("Deployment/mta-cleanup", output);
    }

    /// <summary>functions.metadata as the Worker SDK wrote it: function name → (queue, connection).</summary>
    private static Dictionary<string, (string Queue, string Connection)> FunctionTriggers()
    {
        var config = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
        var path = Path.Combine(TestEnvironment.RepoRoot, "functions", "bin", config, "net10.0", "functions.metadata");
        return JsonDocument.Parse(File.ReadAllText(path)).RootElement.EnumerateArray().ToDictionary(
            f => f.GetProperty("name").GetString()!,
            f =>
            {
                var t = f.GetProperty("bindings").EnumerateArray().Single(b => b.GetProperty("type").GetString() == "queueTrigger");
                return (t.GetProperty("queueName").GetString()!, t.GetProperty("connection").GetString()!);
            });
    }

    private static JsonElement HostJsonQueues() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "host.json"))).RootElement.GetProperty("extensions").GetProperty("queues");

    private static IEnumerable<string> EnvNames(Node container, Manifests m)
    {
        foreach (var e in container["env"].Items) yield return e["name"].Text!;
        foreach (var from in container["envFrom"].Items)
        {
            var source = from["configMapRef"].Exists ? m.Find("ConfigMap", from["configMapRef"]["name"].Text!) : m.Find("Secret", from["secretRef"]["name"].Text!);
            Assert.True(source is not null, $"envFrom names a missing object: {from.Value}");
            foreach (var kv in source!["data"].Entries) yield return kv.Key;
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Overlays))]
    public async Task Every_scaled_object_scales_the_deployment_that_runs_its_queues_function(string overlay)
    {
        var m = await Manifests.RenderAsync(overlay);
        var functions = FunctionTriggers();
        var queues = HostJsonQueues();
        var perReplica = queues.GetProperty("batchSize").GetInt32() + queues.GetProperty("newBatchThreshold").GetInt32();
        var scaled = new HashSet<string>();

        foreach (var so in m.OfKind("ScaledObject"))
        {
            var target = so["spec"]["scaleTargetRef"]["name"].Text!;
            var deployment = m.Find("Deployment", target);
            Assert.True(deployment is not null, $"{so["metadata"]["name"].Text} targets missing Deployment {target}");
            var container = deployment!["spec"]["template"]["spec"]["containers"][0];
            var function = container["env"].Items.Single(e => e["name"].Text == "AzureFunctionsJobHost__functions__0")["value"].Text!;
            Assert.True(functions.TryGetValue(function, out var trigger), $"{target} runs {function}, which functions.metadata does not list");
            scaled.Add(function);

            var t = so["spec"]["triggers"][0];
            Assert.Equal("azure-queue", t["type"].Text);
            Assert.Equal(trigger.Queue, t["metadata"]["queueName"].Text);
            Assert.Equal(perReplica.ToString(), t["metadata"]["queueLength"].Text);
            Assert.Equal("0", so["spec"]["minReplicaCount"].Value?.ToString());
            // Parked retries are invisible: only the deferred queue's scaler must ignore them.
            Assert.Equal(trigger.Queue == "deferred" ? "visibleonly" : "all", t["metadata"]["queueLengthStrategy"].Text);

            // The scaler reads the same storage account the function's connection setting names.
            var env = EnvNames(container, m).ToList();
            var auth = m.Find("TriggerAuthentication", t["authenticationRef"]["name"].Text!);
            Assert.NotNull(auth);
            if (overlay == "dev")
            {
                var secretRef = auth!["spec"]["secretTargetRef"][0];
                Assert.Equal("connection", secretRef["parameter"].Text);
                Assert.Equal(trigger.Connection, secretRef["key"].Text);
                Assert.NotNull(m.Find("Secret", secretRef["name"].Text!)?["data"][trigger.Connection].Text);
                Assert.Contains(container["envFrom"].Items, f => f["secretRef"]["name"].Text == secretRef["name"].Text);
                Assert.Contains(trigger.Connection, env);
            }
            else
            {
                Assert.Equal("azure-workload", auth!["spec"]["podIdentity"]["provider"].Text);
                var identity = m.Find("ConfigMap", "mta-storage-identity")!["data"];
                Assert.Equal(identity[trigger.Connection + "__accountName"].Text, t["metadata"]["accountName"].Text);
                // KEDA reads the queue as an identity of its own, not as the function that changes it (StorageRolesTests).
                Assert.Contains(trigger.Connection + "__clientId", env);
                var clientId = container["env"].Items.Single(e => e["name"].Text == trigger.Connection + "__clientId")["value"].Text;
                Assert.NotEqual(clientId, auth["spec"]["podIdentity"]["identityId"].Text);
                Assert.Contains(trigger.Connection + "__accountName", env);
                Assert.DoesNotContain(trigger.Connection, env); // no connection string anywhere
                Assert.Empty(m.OfKind("Secret"));
            }

            // A scale-in must not cut off a running invocation: grace period beyond host.json functionTimeout.
            var timeout = TimeSpan.Parse(JsonDocument.Parse(File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "host.json")))
                .RootElement.GetProperty("functionTimeout").GetString()!);
            var grace = int.Parse(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].Text!);
            Assert.True(grace > timeout.TotalSeconds, $"{target}: grace {grace}s <= functionTimeout {timeout}");
        }
        Assert.Equal(functions.Keys.Order(), scaled.Order()); // every queue-triggered function has its own scaled Deployment
    }

    [SkippableFact]
    public async Task The_rspamd_component_points_the_ingress_at_its_service_and_lets_it_through()
    {
        var m = await Manifests.RenderAsync("dev");
        var setting = m.Find("ConfigMap", "mta-config")!["data"]["Ingress__Milters"].Text;
        var milter = Assert.Single(Mta.Ingress.Milter.MilterEndpoint.ParseList(setting, Mta.Ingress.Milter.MilterEndpoint.Defaults(
            Mta.Ingress.Milter.MilterDefaultAction.Tempfail, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(300), 6)));
        var service = m.Find("Service", milter.Host!);
        Assert.True(service is not null, $"Ingress__Milters names {milter.Host}, which is no Service");
        Assert.Contains(service!["spec"]["ports"].Items, p => p["port"].Text == milter.Port.ToString());
        var selector = service["spec"]["selector"]["app.kubernetes.io/name"].Text;
        Assert.Equal("rspamd", m.Find("Deployment", selector!)?["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"].Text);
        // Default deny: the ingress needs an egress rule to the milter port, and rspamd an ingress rule from the ingress.
        Assert.Contains(m.OfKind("NetworkPolicy"), p => p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].Text == "mta-ingress"
            && p["spec"]["egress"].Items.Any(e => e["ports"].Items.Any(port => port["port"].Text == milter.Port.ToString())));
        Assert.Contains(m.OfKind("NetworkPolicy"), p => p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].Text == "rspamd"
            && p["spec"]["ingress"].Items.Any(i => i["from"].Items.Any(f => f["podSelector"]["matchLabels"]["app.kubernetes.io/name"].Text == "mta-ingress")));
    }

    [SkippableTheory]
    [MemberData(nameof(Overlays))]
    public async Task Ingress_ports_probes_and_drain_match_its_configuration(string overlay)
    {
        var m = await Manifests.RenderAsync(overlay);
        var config = m.Find("ConfigMap", "mta-config")!["data"];
        var deployment = m.Find("Deployment", "mta-ingress")!;
        var pod = deployment["spec"]["template"]["spec"];
        var ports = pod["containers"][0]["ports"].Items.ToDictionary(p => p["name"].Text!, p => p["containerPort"].Text);
        Assert.Equal(config["Ingress__Port"].Text, ports["smtp"]);
        Assert.Equal(config["Ingress__HealthPort"].Text, ports["health"]);
        Assert.Equal("::", config["Ingress__ListenAddress"].Text);
        Assert.Equal("health", pod["containers"][0]["readinessProbe"]["httpGet"]["port"].Text);
        Assert.True(int.Parse(pod["terminationGracePeriodSeconds"].Text!) > int.Parse(config["Ingress__DrainSeconds"].Text!));

        Assert.Equal(config["Ingress__SubmissionPort"].Text, ports["submission"]);
        Assert.Equal(config["Ingress__SubmissionsPort"].Text, ports["submissions"]);

        var service = m.Find("Service", "mta-ingress")!["spec"];
        Assert.Equal("LoadBalancer", service["type"].Text);
        Assert.Equal("Local", service["externalTrafficPolicy"].Text);
        var published = service["ports"].Items.ToDictionary(p => p["port"].Text!, p => p["targetPort"].Text!);
        Assert.Equal(new Dictionary<string, string> { ["25"] = "smtp", ["587"] = "submission", ["465"] = "submissions" }, published);
        Assert.All(ports.Values, p => Assert.True(int.Parse(p!) > 1024, $"container port {p} must be unprivileged"));
        var allowedIn = m.Find("NetworkPolicy", "ingress-smtp-in")!["spec"]["ingress"][0]["ports"].Items.Select(p => p["port"].Text).ToList();
        Assert.Equal(new[] { "smtp", "submission", "submissions" }.Select(name => ports[name]).Order(), allowedIn.Order());
        // Health and /metrics share a port, which only the monitoring namespace reaches (the kubelet's probes need no rule).
        var metricsIn = m.Find("NetworkPolicy", "metrics-in")!["spec"]["ingress"].Items.Single();
        Assert.Contains(ports["health"], metricsIn["ports"].Items.Select(p => p["port"].Text));
        Assert.Equal("monitoring", metricsIn["from"].Items.Single()["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].Text);

        // Certificate, key and users come from Secrets mounted as files, never from the environment.
        var mounts = pod["containers"][0]["volumeMounts"].Items.ToDictionary(v => v["mountPath"].Text!, v => v["name"].Text!);
        var volumes = pod["volumes"].Items.ToDictionary(v => v["name"].Text!, v => v);
        foreach (var key in new[] { "Ingress__TlsCertificateFile", "Ingress__TlsKeyFile", "Ingress__UsersFile" })
        {
            var file = config[key].Text!;
            var mount = mounts.Keys.Single(path => file.StartsWith(path + "/"));
            Assert.True(volumes[mounts[mount]]["secret"]["secretName"].Exists, $"{key} ({file}) is not in a mounted Secret");
        }

        if (overlay == "azure")
        {
            Assert.True(int.Parse(deployment["spec"]["replicas"].Text!) >= 2);
            Assert.NotNull(m.Find("PodDisruptionBudget", "mta-ingress"));
            Assert.True(pod["topologySpreadConstraints"].Items.Any());
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Overlays))]
    public async Task Every_container_is_locked_down_and_pinned(string overlay)
    {
        var m = await Manifests.RenderAsync(overlay);
        Assert.DoesNotContain(m.Objects, o => o["kind"].Text is "Role" or "ClusterRole" or "RoleBinding" or "ClusterRoleBinding");
        foreach (var sa in m.OfKind("ServiceAccount"))
            Assert.Equal("false", sa["automountServiceAccountToken"].Value?.ToString()?.ToLowerInvariant());
        foreach (var d in m.OfKind("Deployment"))
        {
            var name = d["metadata"]["name"].Text;
            var pod = d["spec"]["template"]["spec"];
            Assert.Equal("false", pod["automountServiceAccountToken"].Value?.ToString()?.ToLowerInvariant());
            foreach (var c in pod["containers"].Items.Concat(pod["initContainers"].Items))
            {
                var sc = c["securityContext"];
                var nonRoot = sc["runAsNonRoot"].Text ?? pod["securityContext"]["runAsNonRoot"].Text;
                var user = sc["runAsUser"].Text ?? pod["securityContext"]["runAsUser"].Text;
                Assert.True(nonRoot == "true" && user is not null && user != "0", $"{name}: container must run as a non-root user");
                Assert.True(sc["readOnlyRootFilesystem"].Text == "true", $"{name}: root filesystem must be read-only");
                Assert.True(sc["allowPrivilegeEscalation"].Text == "false", $"{name}: privilege escalation must be off");
                Assert.Equal(["ALL"], sc["capabilities"]["drop"].Items.Select(i => i.Text));
                var image = c["image"].Text!;
                var tag = image.Contains('@') ? "digest" : image[(image.LastIndexOf(':') + 1)..];
                Assert.True(image.LastIndexOf(':') > image.LastIndexOf('/') || image.Contains('@'), $"{name}: {image} has no tag");
                Assert.NotEqual("latest", tag);
            }
        }
        // Default deny, then only the traffic each part needs.
        Assert.NotNull(m.Find("NetworkPolicy", "default-deny"));
        var smtpOut = m.Find("NetworkPolicy", "delivery-smtp-out")!;
        Assert.Equal("25", smtpOut["spec"]["egress"][0]["ports"][0]["port"].Text);
        // SMTP out reaches none of the networks delivery refuses in code; HTTPS out never the metadata endpoint.
        var excepted = smtpOut["spec"]["egress"][0]["to"].Items.SelectMany(t => t["ipBlock"]["except"].Items.Select(e => e.Text)).ToList();
        foreach (var network in Mta.Mail.Delivery.DeliveryTargets.DefaultInternalNetworks.Where(n => n is not ("224.0.0.0/4" or "240.0.0.0/4" or "::/128" or "ff00::/8")))
            Assert.Contains(network, excepted);
        var https = m.Find("NetworkPolicy", "allow-storage")!["spec"]["egress"][0]["to"].Items
            .SelectMany(t => t["ipBlock"]["except"].Items.Select(e => e.Text)).ToList();
        Assert.Contains("169.254.0.0/16", https);
    }
    [SkippableFact]
    public async Task The_proxy_protocol_component_gives_the_ingress_settings_it_starts_with_and_a_cluster_traffic_policy()
    {
        var m = await Manifests.RenderWithComponentAsync("proxy-protocol");
        var (exit, output) = await ValidateAsync(m.Yaml);
        Assert.True(exit == 0, output);
        var data = m.Find("ConfigMap", "mta-config")!["data"].Entries
            .ToDictionary(kv => kv.Key.Replace("__", ":"), kv => kv.Value.Text);
        Assert.Equal("haproxy", data["Ingress:UpstreamProxyProtocol"]);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(data).Build();
        var findings = Mta.Ingress.IngressHost.CheckConfiguration(configuration).Findings;
        Assert.DoesNotContain(findings, f => f.Setting.StartsWith("Ingress:UpstreamProxy") || f.Setting == "Ingress:ListenAddress");
        var service = m.Find("Service", "mta-ingress")!;
        Assert.Equal("Cluster", service["spec"]["externalTrafficPolicy"].Text);
        Assert.Equal("*", service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"].Text);

        // The same configuration without the balancers' addresses would not start.
        data.Remove("Ingress:UpstreamProxyNetworks:0");
        var without = new ConfigurationBuilder().AddInMemoryCollection(data).Build();
        Assert.Contains(Mta.Ingress.IngressHost.CheckConfiguration(without).Findings,
            f => f.Setting == "Ingress:UpstreamProxyNetworks" && f.Severity == Mta.Mail.Configuration.FindingSeverity.Error);
    }

    [SkippableFact]
    public async Task The_injection_component_opens_the_api_port_with_its_tokens_from_a_secret_and_starts_clean()
    {
        var m = await Manifests.RenderWithComponentAsync("injection");
        var (exit, output) = await ValidateAsync(m.Yaml);
        Assert.True(exit == 0, output);
        var data = m.Find("ConfigMap", "mta-config")!["data"].Entries.ToDictionary(kv => kv.Key.Replace("__", ":"), kv => kv.Value.Text);
        var findings = Mta.Ingress.IngressHost.CheckConfiguration(new ConfigurationBuilder().AddInMemoryCollection(data).Build()).Findings;
        Assert.DoesNotContain(findings, f => f.Setting.StartsWith("Ingress:Injection") && f.Severity == Mta.Mail.Configuration.FindingSeverity.Error);

        var pod = m.Find("Deployment", "mta-ingress")!["spec"]["template"]["spec"];
        var container = pod["containers"][0];
        Assert.Contains(container["ports"].Items, p => p["name"].Text == "injection" && p["containerPort"].Text == data["Ingress:InjectionPort"]);
        var mount = container["volumeMounts"].Items.Single(v => v["name"].Text == "injection-tokens");
        Assert.StartsWith(mount["mountPath"].Text + "/", data["Ingress:InjectionTokensFile"]);
        Assert.Contains(pod["volumes"].Items, v => v["name"].Text == "injection-tokens" && v["secret"]["secretName"].Text == "mta-injection-tokens");
        var service = m.Find("Service", "mta-injection")!;
        Assert.Equal(("ClusterIP", "injection", "mta"), (service["spec"]["type"].Text, service["spec"]["ports"][0]["targetPort"].Text, service["metadata"]["namespace"].Text));
        Assert.Contains(m.Find("NetworkPolicy", "ingress-smtp-in")!["spec"]["ingress"][0]["ports"].Items, p => p["port"].Text == data["Ingress:InjectionPort"]);
    }
}

using YamlDotNet.Serialization;

namespace Mta.Tests.Peers;

/// <summary>A rendered overlay (kubectl kustomize), as plain YAML trees for cross-file checks.</summary>
public sealed class Manifests
{
    /// <summary>The rendered YAML text.</summary>
    public string Yaml { get; }

    /// <summary>Every object in the render.</summary>
    public IReadOnlyList<Node> Objects { get; }

    private Manifests(string yaml)
    {
        Yaml = yaml;
        var deserializer = new DeserializerBuilder().Build();
        // kustomize writes one document per object, separated by '---' lines.
        Objects = yaml.Split("\n---\n").Where(d => d.Trim().Length > 0)
            .Select(d => new Node(deserializer.Deserialize<object>(d))).ToList();
    }

    /// <summary>Renders an overlay under infra/k8s/overlays with kubectl's built-in kustomize.</summary>
    public static async Task<Manifests> RenderAsync(string overlay)
        => await RenderDirectoryAsync(Path.Combine(TestEnvironment.RepoRoot, "infra", "k8s", "overlays", overlay));

    /// <summary>
    /// Renders the base with one component under infra/k8s/components added, as an overlay that lists it would.
    /// </summary>
    public static async Task<Manifests> RenderWithComponentAsync(string component)
    {
        var dir = TestEnvironment.TempFolder("kustomize");
        var k8s = Path.Combine(TestEnvironment.RepoRoot, "infra", "k8s");
        await File.WriteAllTextAsync(Path.Combine(dir, "kustomization.yaml"), $"""
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: ["{Path.GetRelativePath(dir, Path.Combine(k8s, "base"))}"]
            components: ["{Path.GetRelativePath(dir, Path.Combine(k8s, "components", component))}"]

            """);
        return await RenderDirectoryAsync(dir);
    }

    private static async Task<Manifests> RenderDirectoryAsync(string dir)
    {
        var kubectl = TestEnvironment.RequireTool("kubectl");
        var overlay = Path.GetFileName(dir);
        var (exit, output) = await Integration.EndToEndTests.RunAsync(kubectl, "kustomize", dir);
        if (exit != 0) throw new InvalidOperationException($"kubectl kustomize {overlay} failed:\n{output}");
        return new Manifests(output);
    }

    /// <summary>Objects of one kind.</summary>
    public IEnumerable<Node> OfKind(string kind) => Objects.Where(o => o["kind"].Text == kind);

    /// <summary>The object of a kind and name, or null.</summary>
    public Node? Find(string kind, string name) => OfKind(kind).FirstOrDefault(o => o["metadata"]["name"].Text == name);
}

/// <summary>A YAML value with forgiving navigation: a missing key gives an empty node.</summary>
public sealed class Node(object? value)
{
    /// <summary>The raw value.</summary>
    public object? Value { get; } = value;

    /// <summary>A mapping entry.</summary>
    public Node this[string key] => new(Value is Dictionary<object, object> map && map.TryGetValue(key, out var v) ? v : null);

    /// <summary>A sequence item.</summary>
    public Node this[int index] => new(Value is List<object> list && index < list.Count ? list[index] : null);

    /// <summary>Sequence items (none when not a sequence).</summary>
    public IEnumerable<Node> Items => Value is List<object> list ? list.Select(v => new Node(v)) : [];

    /// <summary>Mapping entries (none when not a mapping).</summary>
    public IEnumerable<KeyValuePair<string, Node>> Entries => Value is Dictionary<object, object> map
        ? map.Select(kv => new KeyValuePair<string, Node>((string)kv.Key, new Node(kv.Value))) : [];

    /// <summary>The scalar text, or null.</summary>
    public string? Text => Value as string;

    /// <summary>True when present.</summary>
    public bool Exists => Value is not null;
}

using YamlDotNet.Serialization;

namespace Mta.ScalingSim;

/// <summary>One HPA scaling policy: at most <see cref="Value"/> (pods or percent) per <see cref="PeriodSeconds"/>.</summary>
public sealed record ScalingPolicy(string Type, int Value, int PeriodSeconds);

/// <summary>What a ScaledObject says, as the simulation needs it.</summary>
public sealed record ScalerSettings
{
    public required string Name { get; init; }
    public required string QueueName { get; init; }
    public int PollingInterval { get; init; } = 30;
    public int CooldownPeriod { get; init; } = 300;
    public int MinReplicas { get; init; }
    public int MaxReplicas { get; init; } = 100;
    public int QueueLength { get; init; } = 5;
    public int ActivationQueueLength { get; init; }
    public string Strategy { get; init; } = "all";
    public int ScaleUpStabilization { get; init; }
    public List<ScalingPolicy> ScaleUp { get; init; } = [new("Percent", 100, 15), new("Pods", 4, 15)];
    public int ScaleDownStabilization { get; init; } = 300;
    public List<ScalingPolicy> ScaleDown { get; init; } = [new("Percent", 100, 15)];

    /// <summary>Reads every ScaledObject in a YAML file (keda/scaledobjects.yaml).</summary>
    public static IReadOnlyList<ScalerSettings> Load(string path)
    {
        var yaml = new DeserializerBuilder().Build();
        var result = new List<ScalerSettings>();
        foreach (var text in File.ReadAllText(path).Split("\n---"))
        {
            if (yaml.Deserialize<object>(text) is not Dictionary<object, object> doc || Get(doc, "kind") as string != "ScaledObject") continue;
            var spec = (Dictionary<object, object>)doc["spec"];
            var trigger = (Dictionary<object, object>)((List<object>)spec["triggers"])[0];
            var meta = (Dictionary<object, object>)trigger["metadata"];
            var behavior = Get(Get(Get(spec, "advanced"), "horizontalPodAutoscalerConfig"), "behavior");
            result.Add(new ScalerSettings
            {
                Name = (string)Get(doc, "metadata", "name")!,
                QueueName = (string)meta["queueName"],
                PollingInterval = Int(Get(spec, "pollingInterval"), 30),
                CooldownPeriod = Int(Get(spec, "cooldownPeriod"), 300),
                MinReplicas = Int(Get(spec, "minReplicaCount"), 0),
                MaxReplicas = Int(Get(spec, "maxReplicaCount"), 100),
                QueueLength = Int(Get(meta, "queueLength"), 5),
                ActivationQueueLength = Int(Get(meta, "activationQueueLength"), 0),
                Strategy = Get(meta, "queueLengthStrategy") as string ?? "all",
                ScaleUpStabilization = Int(Get(behavior, "scaleUp", "stabilizationWindowSeconds"), 0),
                ScaleUp = Policies(Get(behavior, "scaleUp", "policies")) ?? [new("Percent", 100, 15), new("Pods", 4, 15)],
                ScaleDownStabilization = Int(Get(behavior, "scaleDown", "stabilizationWindowSeconds"), 300),
                ScaleDown = Policies(Get(behavior, "scaleDown", "policies")) ?? [new("Percent", 100, 15)],
            });
        }
        return result;
    }

    private static object? Get(object? node, params string[] path)
    {
        foreach (var key in path)
            node = node is Dictionary<object, object> map && map.TryGetValue(key, out var v) ? v : null;
        return node;
    }

    private static int Int(object? value, int fallback) => value is null ? fallback : int.Parse(value.ToString()!);

    private static List<ScalingPolicy>? Policies(object? node) => (node as List<object>)?.Cast<Dictionary<object, object>>()
        .Select(p => new ScalingPolicy((string)p["type"], Int(p["value"], 0), Int(p["periodSeconds"], 15))).ToList();
}

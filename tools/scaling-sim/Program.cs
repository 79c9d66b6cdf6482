using System.Globalization;
using Mta.ScalingSim;

// Usage: Mta.ScalingSim --throughput MSG_PER_S [--messages N] [--burst S] [--deferred F] [--start S]
//                       [--scaledobjects keda/scaledobjects.yaml] [--out DIR]
var opts = new Dictionary<string, string>();
for (var i = 0; i + 1 < args.Length; i += 2) opts[args[i].TrimStart('-')] = args[i + 1];
string Opt(string key, string fallback) => opts.GetValueOrDefault(key, fallback);
if (!opts.ContainsKey("throughput"))
{
    Console.Error.WriteLine("mta-scaling-sim: --throughput (messages/s per delivery replica, measured) is required");
    return 2;
}

var scalers = ScalerSettings.Load(Opt("scaledobjects", "keda/scaledobjects.yaml"));
var delivery = scalers.Single(s => s.QueueName == "delivery");
var retry = scalers.Single(s => s.QueueName == "deferred");
var options = new SimulationOptions
{
    ReplicaThroughput = double.Parse(Opt("throughput", "0"), CultureInfo.InvariantCulture),
    Messages = int.Parse(Opt("messages", "100000")),
    BurstSeconds = int.Parse(Opt("burst", "60")),
    DeferredFraction = double.Parse(Opt("deferred", "0.05"), CultureInfo.InvariantCulture),
    PodStartSeconds = int.Parse(Opt("start", "10")),
};
var ours = Simulation.Run(delivery, retry, options);
var rejected = Simulation.Run(delivery with { Strategy = "all" }, retry, options with { DeferredOnDeliveryQueue = true });

var markdown = Report.Markdown(options, ours, rejected);
Console.WriteLine(markdown);
var outDir = Opt("out", "");
if (outDir.Length > 0)
{
    Directory.CreateDirectory(outDir);
    File.WriteAllText(Path.Combine(outDir, "scaling-simulation.md"), markdown);
    File.WriteAllText(Path.Combine(outDir, "scaling-simulation.svg"), Report.Svg(ours, rejected, delivery.MaxReplicas));
    Console.WriteLine($"wrote {outDir}/scaling-simulation.md and .svg");
}
return 0;

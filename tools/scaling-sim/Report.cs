using System.Globalization;
using System.Text;

namespace Mta.ScalingSim;

/// <summary>Writes a simulation as a markdown table and an SVG plot.</summary>
public static class Report
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>A table every <paramref name="step"/> seconds plus the summary figures.</summary>
    public static string Markdown(SimulationOptions o, SimulationResult ours, SimulationResult sameQueue, int step = 30)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Burst: {o.Messages:N0} messages in {o.BurstSeconds} s; {o.ReplicaThroughput.ToString("0.#", Inv)} msg/s per delivery replica; " +
                      $"{o.DeferredFraction:P0} deferred for {o.DeferDelaySeconds} s; pods ready {o.PodStartSeconds} s after scale-up.");
        sb.AppendLine();
        sb.AppendLine("| figure | deferred on `deferred` (shipped) | deferred parked on `delivery` (rejected) |");
        sb.AppendLine("|---|---|---|");
        sb.AppendLine($"| fresh backlog drained at | {S(ours.DrainedAt)} | {S(sameQueue.DrainedAt)} |");
        sb.AppendLine($"| peak delivery replicas | {ours.PeakReplicas} | {sameQueue.PeakReplicas} |");
        sb.AppendLine($"| delivery back to zero at | {S(ours.DeliveryIdleAt)} | {S(sameQueue.DeliveryIdleAt)} |");
        sb.AppendLine($"| delivery replica-seconds | {ours.DeliveryReplicaSeconds:N0} | {sameQueue.DeliveryReplicaSeconds:N0} |");
        sb.AppendLine($"| retry stage first wakes at | {S(ours.RetryActiveAt)} | — |");
        sb.AppendLine();
        sb.AppendLine("Shipped design, over time:");
        sb.AppendLine();
        sb.AppendLine("| t (s) | delivery backlog | parked (deferred) | delivery replicas (ready) | retry replicas | delivered |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|");
        foreach (var s in ours.Samples.Where(s => s.Second % step == 0))
            sb.AppendLine($"| {s.Second} | {s.Backlog:N0} | {s.Parked:N0} | {s.Replicas} ({s.Ready}) | {s.RetryReplicas} | {s.Delivered:N0} |");
        return sb.ToString();
    }

    private static string S(int? seconds) => seconds is int s ? $"{s} s" : "not within the run";

    /// <summary>Replica curves of both designs and the backlog, on one time axis.</summary>
    public static string Svg(SimulationResult ours, SimulationResult sameQueue, int maxReplicas)
    {
        const int W = 900, H = 420, L = 60, R = 70, T = 30, B = 50;
        var n = ours.Samples.Count;
        var maxBacklog = Math.Max(1, ours.Samples.Max(s => s.Backlog));
        double X(int t) => L + (W - L - R) * t / (double)(n - 1);
        double Y(double replicas) => H - B - (H - T - B) * replicas / Math.Max(1, maxReplicas);
        double YB(double backlog) => H - B - (H - T - B) * backlog / maxBacklog;
        string Line(IEnumerable<(int T, double V)> points, Func<double, double> y) =>
            string.Join(' ', points.Select(p => $"{X(p.T).ToString("0.#", Inv)},{y(p.V).ToString("0.#", Inv)}"));

        var sb = new StringBuilder();
        sb.AppendLine($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.AppendLine($"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
        sb.AppendLine($"<text x=\"{L}\" y=\"18\" font-size=\"14\">Delivery replicas during a burst (KEDA azure-queue, ScaledObjects as shipped)</text>");
        for (var i = 0; i <= 5; i++)
        {
            var rv = maxReplicas * i / 5.0;
            var y = Y(rv).ToString("0.#", Inv);
            sb.AppendLine($"<line x1=\"{L}\" x2=\"{W - R}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eee\"/>");
            sb.AppendLine($"<text x=\"{L - 8}\" y=\"{y}\" text-anchor=\"end\">{rv:0}</text>");
            sb.AppendLine($"<text x=\"{W - R + 8}\" y=\"{y}\" fill=\"#888\">{maxBacklog * i / 5:N0}</text>");
        }
        for (var t = 0; t < n; t += 300)
            sb.AppendLine($"<text x=\"{X(t).ToString("0.#", Inv)}\" y=\"{H - B + 18}\" text-anchor=\"middle\">{t} s</text>");
        sb.AppendLine($"<text x=\"14\" y=\"{H / 2}\" transform=\"rotate(-90 14 {H / 2})\" text-anchor=\"middle\">replicas</text>");
        sb.AppendLine($"<text x=\"{W - 12}\" y=\"{H / 2}\" transform=\"rotate(90 {W - 12} {H / 2})\" text-anchor=\"middle\" fill=\"#888\">delivery backlog (messages)</text>");
        sb.AppendLine($"<polyline fill=\"none\" stroke=\"#bbb\" stroke-width=\"1.5\" points=\"{Line(ours.Samples.Select(s => (s.Second, s.Backlog)), YB)}\"/>");
        sb.AppendLine($"<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"5,4\" points=\"{Line(sameQueue.Samples.Select(s => (s.Second, (double)s.Replicas)), Y)}\"/>");
        sb.AppendLine($"<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{Line(ours.Samples.Select(s => (s.Second, (double)s.Replicas)), Y)}\"/>");
        sb.AppendLine($"<polyline fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\" points=\"{Line(ours.Samples.Select(s => (s.Second, (double)s.RetryReplicas)), Y)}\"/>");
        var ly = H - 14;
        sb.AppendLine($"<line x1=\"{L}\" x2=\"{L + 24}\" y1=\"{ly - 4}\" y2=\"{ly - 4}\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"{L + 30}\" y=\"{ly}\">delivery (shipped)</text>");
        sb.AppendLine($"<line x1=\"{L + 160}\" x2=\"{L + 184}\" y1=\"{ly - 4}\" y2=\"{ly - 4}\" stroke=\"#ff7f0e\" stroke-width=\"2\"/><text x=\"{L + 190}\" y=\"{ly}\">retry (shipped)</text>");
        sb.AppendLine($"<line x1=\"{L + 310}\" x2=\"{L + 334}\" y1=\"{ly - 4}\" y2=\"{ly - 4}\" stroke=\"#d62728\" stroke-dasharray=\"5,4\"/><text x=\"{L + 340}\" y=\"{ly}\">delivery if retries were parked on its queue</text>");
        sb.AppendLine($"<line x1=\"{L + 610}\" x2=\"{L + 634}\" y1=\"{ly - 4}\" y2=\"{ly - 4}\" stroke=\"#bbb\"/><text x=\"{L + 640}\" y=\"{ly}\">backlog</text>");
        sb.AppendLine("</svg>");
        return sb.ToString();
    }
}

namespace Mta.ScalingSim;

/// <summary>The load and the system's own figures for one run.</summary>
public sealed record SimulationOptions
{
    /// <summary>Messages in the burst.</summary>
    public int Messages { get; init; } = 100_000;

    /// <summary>Seconds over which the burst arrives (evenly).</summary>
    public int BurstSeconds { get; init; } = 60;

    /// <summary>Messages one delivery replica delivers per second (measured; see docs/scaling.md).</summary>
    public required double ReplicaThroughput { get; init; }

    /// <summary>Share of deliveries answered with 4xx and parked for a retry.</summary>
    public double DeferredFraction { get; init; } = 0.05;

    /// <summary>Backoff before the first retry (Postfix minimal_backoff_time).</summary>
    public int DeferDelaySeconds { get; init; } = 300;

    /// <summary>Seconds from a scale-up decision until the new pod takes messages.</summary>
    public int PodStartSeconds { get; init; } = 10;

    /// <summary>HPA sync period (kube-controller-manager default 15 s).</summary>
    public int HpaSyncSeconds { get; init; } = 15;

    /// <summary>Simulated time.</summary>
    public int DurationSeconds { get; init; } = 1500;

    /// <summary>
    /// The design this project rejected, for comparison: deferred jobs parked (invisible) on the
    /// delivery queue itself, which KEDA's default strategy counts as queue length.
    /// </summary>
    public bool DeferredOnDeliveryQueue { get; init; }
}

/// <summary>One second of the run.</summary>
public sealed record Sample(int Second, double Backlog, double Parked, int Replicas, int Ready, double RetryBacklog, int RetryReplicas, double Delivered);

/// <summary>The replica curve and the figures drawn from it.</summary>
public sealed record SimulationResult(IReadOnlyList<Sample> Samples, int? DrainedAt, int? DeliveryIdleAt, double DeliveryReplicaSeconds, int PeakReplicas, int? RetryActiveAt);

/// <summary>
/// Replays arrivals through KEDA's azure-queue scaler and the HPA, second by second:
/// KEDA activates a stage from zero when its queue length exceeds activationQueueLength (checked
/// every pollingInterval) and returns it to zero cooldownPeriod after the queue was last active;
/// in between the HPA sets ceil(queue length / queueLength) replicas every sync period, within
/// maxReplicaCount and the ScaledObject's scale-up and scale-down policies and stabilization windows.
/// Queue length follows queueLengthStrategy: 'all' counts invisible messages (in flight and parked),
/// 'visibleonly' counts visible ones while fewer than 32 (KEDA's peek), else falls back to 'all'.
/// </summary>
public static class Simulation
{
    /// <summary>Runs delivery (and the retry stage) with the given ScaledObjects.</summary>
    public static SimulationResult Run(ScalerSettings delivery, ScalerSettings retry, SimulationOptions o)
    {
        var d = new Stage(delivery, o);
        var r = new Stage(retry, o);
        var samples = new List<Sample>();
        double delivered = 0;
        int? drainedAt = null, idleAt = null, retryActiveAt = null;
        double replicaSeconds = 0;
        var peak = 0;

        for (var t = 0; t < o.DurationSeconds; t++)
        {
            if (t < o.BurstSeconds) d.Visible += (double)o.Messages / o.BurstSeconds;
            d.Release(t);
            r.Release(t);
            d.Scale(t);
            r.Scale(t);

            var (fresh, retried) = d.Process(t);
            var deferred = fresh * o.DeferredFraction; // retries succeed: one round of deferral per message
            delivered += fresh - deferred + retried;
            (o.DeferredOnDeliveryQueue ? d : r).Park(t + o.DeferDelaySeconds, deferred);
            var (_, retriedByRetryStage) = r.Process(t);
            delivered += retriedByRetryStage;

            replicaSeconds += d.Replicas;
            peak = Math.Max(peak, d.Replicas);
            if (drainedAt is null && t >= o.BurstSeconds && d.Visible < 0.5) drainedAt = t;
            if (drainedAt is not null && idleAt is null && d.Replicas == 0) idleAt = t;
            if (retryActiveAt is null && r.Replicas > 0) retryActiveAt = t;
            samples.Add(new Sample(t, d.Visible + d.VisibleRetries, d.ParkedCount + r.ParkedCount, d.Replicas, d.Ready(t), r.VisibleRetries, r.Replicas, delivered));
        }
        return new SimulationResult(samples, drainedAt, idleAt, replicaSeconds, peak, retryActiveAt);
    }

    private sealed class Stage(ScalerSettings s, SimulationOptions o)
    {
        /// <summary>KEDA's peek limit for visibleonly.</summary>
        private const int PeekLimit = 32;

        /// <summary>Messages a replica holds invisible at once: host.json batchSize + newBatchThreshold.</summary>
        private const int InFlightPerReplica = 24;

        private readonly List<int> _podsReadyAt = [];
        private readonly SortedDictionary<int, double> _parked = new();
        private readonly List<(int T, int Replicas)> _history = [];
        private readonly List<(int T, int Desired)> _downRecommendations = [];
        private int _lastActive = int.MinValue / 2;
        private double _carry;

        /// <summary>Fresh messages waiting.</summary>
        public double Visible { get; set; }

        /// <summary>Retries that became due and wait.</summary>
        public double VisibleRetries { get; private set; }
        public int Replicas => _podsReadyAt.Count;
        public double ParkedCount => _parked.Values.Sum();
        public int Ready(int t) => _podsReadyAt.Count(r => r <= t);

        public void Park(int due, double count)
        {
            if (count <= 0) return;
            _parked[due] = _parked.GetValueOrDefault(due) + count;
        }

        public void Release(int t)
        {
            if (_parked.Remove(t, out var due)) VisibleRetries += due;
        }

        private double QueueLength(int t)
        {
            var waiting = Visible + VisibleRetries;
            var inFlight = Math.Min(waiting, Ready(t) * InFlightPerReplica);
            var all = waiting + ParkedCount; // visible + in flight (both in 'waiting' here) + parked invisible
            if (s.Strategy == "visibleonly")
            {
                var visibleOnly = waiting - inFlight;
                return visibleOnly < PeekLimit ? Math.Floor(visibleOnly) : all;
            }
            return all;
        }

        public void Scale(int t)
        {
            var length = QueueLength(t);
            if (t % s.PollingInterval == 0)
            {
                if (length > s.ActivationQueueLength)
                {
                    _lastActive = t;
                    if (Replicas == 0) SetReplicas(t, Math.Max(1, s.MinReplicas));
                }
                else if (Replicas > 0 && s.MinReplicas == 0 && t - _lastActive >= s.CooldownPeriod)
                {
                    SetReplicas(t, 0);
                }
            }
            if (Replicas > 0 && t % o.HpaSyncSeconds == 0)
                Hpa(t, length);
            _history.Add((t, Replicas));
        }

        private void Hpa(int t, double length)
        {
            var desired = Math.Clamp((int)Math.Ceiling(length / s.QueueLength), 1, s.MaxReplicas);
            var current = Replicas;
            // The HPA keeps every recommendation and scales down only to the highest one in the window.
            _downRecommendations.Add((t, desired));
            _downRecommendations.RemoveAll(x => x.T < t - s.ScaleDownStabilization);
            if (desired > current)
            {
                var limit = s.ScaleUp.Max(p => Allowed(t, p, up: true));
                SetReplicas(t, Math.Min(desired, Math.Max(limit, current)));
                return;
            }
            var stabilized = _downRecommendations.Max(x => x.Desired);
            if (stabilized < current)
            {
                var floor = s.ScaleDown.Min(p => Allowed(t, p, up: false));
                SetReplicas(t, Math.Max(stabilized, Math.Min(floor, current)));
            }
        }

        /// <summary>Replicas a policy allows, from the count at the start of its period.</summary>
        private int Allowed(int t, ScalingPolicy p, bool up)
        {
            var start = _history.LastOrDefault(h => h.T <= t - p.PeriodSeconds).Replicas;
            if (start == 0) start = Replicas;
            return (p.Type, up) switch
            {
                ("Pods", true) => start + p.Value,
                ("Percent", true) => (int)Math.Ceiling(start * (1 + p.Value / 100.0)),
                ("Pods", false) => start - p.Value,
                _ => (int)Math.Ceiling(start * (1 - p.Value / 100.0)),
            };
        }

        private void SetReplicas(int t, int n)
        {
            while (_podsReadyAt.Count < n) _podsReadyAt.Add(t + o.PodStartSeconds);
            while (_podsReadyAt.Count > n)
            {
                // Pods that are not ready yet go first, as the ReplicaSet controller does.
                var youngest = _podsReadyAt.IndexOf(_podsReadyAt.Max());
                _podsReadyAt.RemoveAt(youngest);
            }
        }

        /// <summary>Works for one second; returns fresh and retried messages done.</summary>
        public (double Fresh, double Retried) Process(int t)
        {
            _carry += Ready(t) * o.ReplicaThroughput;
            var fresh = Math.Min(Visible, Math.Floor(_carry));
            _carry -= fresh;
            Visible -= fresh;
            var retried = Math.Min(VisibleRetries, Math.Floor(_carry));
            _carry -= retried;
            VisibleRetries -= retried;
            if (Visible + VisibleRetries < 1) _carry = 0; // an idle replica does not bank capacity
            return (fresh, retried);
        }
    }
}

#!/usr/bin/env python3
"""Whole-system benchmark: the MTA (Azurite, ingress, functions) against Postfix, same machine, same run.

Both systems take mail from Postfix's smtp-source and relay all of it to Postfix's smtp-sink on loopback:

  ours     smtp-source -> ingress -> (Azurite) -> cleanup -> (Azurite) -> delivery -> smtp-sink
           Release builds; the functions (cleanup, delivery, bounce) run in the functions app's isolated worker,
           launched and driven over gRPC by the local functions host (functions-host) as the Functions host
           image does, with host.json's queue settings; Mta:RelayHost=[127.0.0.1]:SINK, every other
           setting at its default (traffic shaping on, connection cache 2 s). Azurite persists to disk.
  postfix  smtp-source -> smtpd -> cleanup (fsync'd queue file) -> qmgr -> smtp -> smtp-sink
           Debian's Postfix 3.7 as a private instance in a temporary folder, relayhost = [127.0.0.1]:SINK,
           default_transport = smtp; destination concurrency 20 and 50 recipients per delivery (its defaults).

Cases (`--cases` picks some, by number or name): 2 KiB and 100 KiB bodies (smtp-source -l) x 1 and 50 recipients
per message (-r) x 20 and 100 sessions (-s). Every case starts both systems afresh (new Azurite folder, new
Postfix queue, a new smtp-sink dumping every transaction to its own file), sends a warm-up batch with the
case's parameters and waits until the sink has it all (JIT, Postfix's process pool and caches; its CPU is reported
on its own line). Ours then gets further warm-up rounds (about 3 s of traffic each) until neither .NET process
spends more than 5 % of its CPU in a round on tiered recompilation, the background JIT that replaces first-tier code
of hot methods: a count of messages is no measure of that (after 2,500 messages of 2 KiB it was still more than half
of both processes' CPU; it settled after 25-50 s of load, 8,000-30,000 messages). The CPU those rounds took and the recompilation's share are
printed: that is what each new replica pays once. Then it measures:

- accepted msg/s: smtp-source's messages / smtp-source's elapsed time;
- delivered msg/s: smtp-source's messages / (last arrival at the sink - start of sending). A "message" is one
  transaction at the sink: with 50 recipients both systems deliver each message as one transaction of 50
  recipients (checked: the recipients in the dump files are counted too and must be messages x recipients);
- latency: a probe thread sends one small message (smtplib, unique token in Subject and Message-ID) every
  0.1 s while smtp-source runs, to the same port, and notes when its 250 came back; the probe's dump file's
  mtime is when it arrived at the sink. p50/p99 of the difference over the probes (their number is printed;
  probes are not counted in the rates);
- CPU (user+sys from /proc, including reaped children) per 1,000 delivered messages (smtp-source's plus the
  probes), from the start of sending until the sink has everything: ours = ingress + functions host + worker (each
  printed), Azurite on its own line (it stands in for Azure Storage); Postfix = master plus every child, live or
  reaped. Goals: ours <= 0.35x Postfix's in the 2 KiB cases, <= 0.5x in the 100 KiB cases (printed per case);
- peak RSS: ours per process (getrusage of the waited-for process, whole lifetime); Postfix summed over all its
  processes, sampled every 0.5 s during the measured run;
- ratios ours/Postfix for the rates and CPU (ours with and without Azurite).

Storage operations are counted, not estimated, in a separate pass after the timed cases (Azurite's `--debug`
request log slows it, so the timed cases run without it): 2 KiB and 100 KiB, 1 and 50 recipients, 20 sessions,
300 messages (150 with 50 recipients) after a warm-up, then 2 s for the last deletes and completion records.
Once-only requests (Queue_Create, Container_Create, Table_Create, Queue_GetProperties,
Service_ListQueuesSegment) are left out, Messages_Dequeue (receives, empty polls included) is reported apart
from the rest; both per delivered message.

The gRPC hop (after the cases; --no-rpc skips it): `Mta.Benchmarks rpc-hop` drives the same worker with near-empty
invocations (a null-sender bounce, dropped at once) from the host's side of the protocol: round-trip latency one at
a time, and the rate and each side's CPU per invocation with 16 in flight.

Cold start (before the cases): with Azurite and a sink up, the ingress is spawned and a client retries
connecting until it gets the first 250 (spawn -> 250; the ingress cleans that message up itself, so it then
waits in the delivery queue); a second ingress with Ingress__CleanupInline=false puts another on the incoming
queue for the cleanup stage. Then the functions host is spawned with `Mta` logging at Information and timed until
its worker is initialized (the host's line), cleanup's log line (`nrcpt=`), delivery's `status=sent` line
(timestamps from the log lines, as the host relays them) and the message's arrival at the sink (dump file mtime):
from the host's spawn, both processes' start included. Target: <= 1 s each.

Caveats: everything (both systems, Azurite, smtp-source, smtp-sink) shares the machine's cores, so anything else
running at the same time changes the figures, ours more than Postfix's (ours is several processes that all want
CPU at once). In --quick mode the warm-up is one short round, too short for .NET's tiered recompilation to finish, so ours' CPU
per message is overstated there: use it to check the script, not for figures. smtp-source opens a connection
per message on both systems; the 50-recipient cases send 50 different recipients (1user@, 2user@...).

Run from the repository root as root (Postfix's master needs it), after a Release build:

    python3 bench/system_vs_postfix.py            # everything, about 9 minutes on 2 cores
    python3 bench/system_vs_postfix.py --quick    # a tenth of the messages, a smoke test (2-3 minutes)
    python3 bench/system_vs_postfix.py --cases 1,5 --no-storage --no-coldstart
    BENCH_DEBUG=1 python3 bench/system_vs_postfix.py ...   # also prints each warm-up round's CPU and JIT share

Needs: dotnet, node_modules (Azurite), Debian's postfix (smtp-source, smtp-sink).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from processes import jit_cpu_between, jit_cpu_of, cpu_of, free_port, rss_of, wait_tcp  # noqa: E402  (shared with the other benchmark)
SENDER = "bench@sender.test"
RECIPIENT = "user@example.test"
OVERHEAD_OPS = {"Queue_Create", "Container_Create", "Table_Create", "Queue_GetProperties", "Service_ListQueuesSegment"}
TICK = os.sysconf("SC_CLK_TCK")

# Everything started, so that it can be stopped on any exit (exceptions, Ctrl-C, SIGTERM).
LIVE = []


# ---------------------------------------------------------------------------------------------- helpers









def stop_proc(proc, timeout=30):
    """SIGTERM, then SIGKILL after timeout; returns (CPU seconds incl. waited-for children, peak RSS MiB)."""
    if proc.returncode is not None:
        return 0.0, 0.0
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + timeout
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            proc.returncode = -1
            return 0.0, 0.0
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        if time.time() > deadline:
            proc.kill()
            deadline = time.time() + 10
        time.sleep(0.05)


def smtp_source(port, sessions, messages, size, recipients):
    args = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-r", str(recipients),
            "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]
    started = time.time()
    out = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.time() - started
    if out.returncode != 0:
        raise RuntimeError("smtp-source failed: " + out.stderr[-500:])
    return started, elapsed


def metric_from(url, name, **labels):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{([^}}]*)}})? ([0-9.e+-]+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def log_lines(path, pattern):
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip() for line in f if re.search(pattern, line)]
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------------------------------------- processes

class Sink:
    """smtp-sink dumping every transaction to a file of its own (mtime = arrival, ns precision)."""

    def __init__(self, folder):
        self.dir = os.path.join(folder, "sink")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)  # smtp-sink drops to nobody
        self.port = free_port()
        self.complete = {}  # finished dump files: name -> mtime_ns
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", os.path.join(self.dir, "%Y%m%d%H%M%S."),
                                      f"127.0.0.1:{self.port}", "1000"],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(folder, "sink.log"), "w"))
        LIVE.append(self)
        wait_tcp(self.port, self.proc)

    def refresh(self):
        """Finds the finished transactions. smtp-sink creates a dump file when the transaction starts and writes
        it as it goes; a finished one ends with the message's last line and an empty line ("\\n\\n")."""
        for name in os.listdir(self.dir):
            if name in self.complete:
                continue
            path = os.path.join(self.dir, name)
            try:
                st = os.stat(path)
                if st.st_size < 2:
                    continue
                with open(path, "rb") as f:
                    f.seek(-2, os.SEEK_END)
                    if f.read(2) == b"\n\n":
                        self.complete[name] = st.st_mtime_ns
            except FileNotFoundError:
                pass

    def count(self):
        self.refresh()
        return len(self.complete)

    def files(self):
        self.refresh()
        return set(self.complete)

    def wait(self, expected, idle=60, deadline=None):
        """Waits until at least `expected` transactions arrived; False after `idle` s without progress."""
        last, last_change = -1, time.time()
        while True:
            n = self.count()
            if n >= expected:
                return True
            now = time.time()
            if n != last:
                last, last_change = n, now
            if now - last_change > idle or (deadline and now > deadline):
                return False
            time.sleep(0.05)

    def stop(self):
        stop_proc(self.proc)


class Azurite:
    def __init__(self, folder, debug_log=None):
        self.blob, self.queue, self.table = free_port(), free_port(), free_port()
        args = [os.path.join(ROOT, "node_modules", ".bin", "azurite"), "--silent", "--skipApiVersionCheck",
                "--disableTelemetry", "--location", folder, "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1",
                "--tableHost", "127.0.0.1", "--blobPort", str(self.blob), "--queuePort", str(self.queue),
                "--tablePort", str(self.table)]
        if debug_log:
            args += ["--debug", debug_log]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        LIVE.append(self)
        wait_tcp(self.queue, self.proc)
        wait_tcp(self.blob, self.proc)
        wait_tcp(self.table, self.proc)
        self.connection = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                           "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                           f"BlobEndpoint=http://127.0.0.1:{self.blob}/devstoreaccount1;"
                           f"QueueEndpoint=http://127.0.0.1:{self.queue}/devstoreaccount1;"
                           f"TableEndpoint=http://127.0.0.1:{self.table}/devstoreaccount1;")

    def stop(self):
        return stop_proc(self.proc)


class Ingress:
    def __init__(self, storage, sink_port, folder, wait=True, settings=None):
        self.port, self.health = free_port(), free_port()
        self.log = os.path.join(folder, "ingress.log")
        env = dict(os.environ)
        env.update({
            "AzureWebJobsStorage": storage,
            "Ingress__Port": str(self.port),
            "Ingress__HealthPort": str(self.health),
            "Ingress__MaxConnections": "1000",
            # The ingress cleans up small messages itself, routing included: the same Mta settings as the functions.
            "Mta__RelayHost": f"[127.0.0.1]:{sink_port}",
            "Mta__MyHostname": "mta.bench",
            "Logging__LogLevel__Default": "Warning",
        })
        env.update(settings or {})
        dll = os.path.join(PROGRAMS["ingress"], "Mta.Ingress.dll")
        self.spawned = time.time()
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(["dotnet", dll], env=env, stdout=out, stderr=subprocess.STDOUT)
        LIVE.append(self)
        if wait:
            wait_tcp(self.port, self.proc)
            wait_tcp(self.health, self.proc)

    def metric(self, name, **labels):
        return metric_from(f"http://127.0.0.1:{self.health}/metrics", name, **labels)

    def stop(self):
        return stop_proc(self.proc)


def children_of(pid):
    """Process ids of pid's children, from /proc."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(c) for c in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


class Functions:
    """The functions: the local functions host and the isolated worker it launches (cleanup, delivery, bounce)."""

    def __init__(self, storage, sink_port, folder, poll=None, info_log=False, wait=True, settings=None):
        self.metrics_port = free_port()
        self.log = os.path.join(folder, "functions.log")
        data = os.path.join(folder, "data")
        os.makedirs(data, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "AzureWebJobsStorage": storage,
            "Mta__RelayHost": f"[127.0.0.1]:{sink_port}",
            "Mta__DataDirectory": data,
            "Mta__MyHostname": "mta.bench",
            "Mta__MetricsPort": str(self.metrics_port),
            "Logging__LogLevel__Default": "Warning",
            "AzureFunctionsJobHost__logging__logLevel__default": "Warning",
        })
        if info_log:
            env["AzureFunctionsJobHost__logging__logLevel__Mta"] = "Information"
            env["AzureFunctionsJobHost__logging__logLevel__Host.Worker"] = "Debug"  # the start-up's steps
            env["AzureFunctionsJobHost__logging__logLevel__Host.Startup"] = "Information"
            env["Logging__LogLevel__Mta"] = "Information"
        if poll:
            env["AzureFunctionsJobHost__extensions__queues__maxPollingInterval"] = poll
        env.update(settings or {})
        host = os.path.join(PROGRAMS["functions-host"], "Mta.Functions.Host.dll")
        app = PROGRAMS["functions"]
        self.lines = []  # (time seen, line), only with info_log
        self.spawned = time.time()
        if info_log:
            self.proc = subprocess.Popen(["dotnet", host, "--app-path", app], env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, bufsize=1)
            threading.Thread(target=self._read, daemon=True).start()
        else:
            with open(self.log, "w") as out:
                self.proc = subprocess.Popen(["dotnet", host, "--app-path", app], env=env, stdout=out,
                                             stderr=subprocess.STDOUT)
        LIVE.append(self)
        if wait:
            wait_tcp(self.metrics_port, self.proc)

    def _read(self):
        with open(self.log, "w") as out:
            for line in self.proc.stdout:
                self.lines.append((time.time(), line.rstrip()))
                out.write(line)

    def worker_pid(self, timeout=60):
        """The isolated worker the host launched: its one child process."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            children = children_of(self.proc.pid)
            if children:
                return children[0]
            if self.proc.poll() is not None:
                raise RuntimeError(f"the functions host exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise TimeoutError("the functions host started no worker")

    def metric(self, name, **labels):
        return metric_from(f"http://127.0.0.1:{self.metrics_port}/metrics", name, **labels)

    def stop(self):
        return stop_proc(self.proc)


class Postfix:
    # Like tests/postfix-peer/master.cf (no chroot, everything in the instance's own folders), which already has
    # every service delivery needs (qmgr, smtp, rewrite, scache, bounce/defer/trace); written here so that the
    # script stands alone.
    MASTER_CF = """\
@LISTEN@ inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
smtp unix - - n - - smtp
relay unix - - n - - smtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
tlsmgr unix - - n 1000? 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
"""

    def __init__(self, folder, sink_port):
        self.port = free_port()
        self.config = os.path.join(folder, "conf")
        os.makedirs(self.config)
        os.makedirs(os.path.join(folder, "queue"))
        data = self.data = os.path.join(folder, "data")
        os.makedirs(data)
        shutil.chown(data, "postfix")
        with open(os.path.join(self.config, "main.cf"), "w") as f:
            f.write("\n".join([
                "compatibility_level = 3.6", f"queue_directory = {folder}/queue", f"data_directory = {data}",
                "mail_owner = postfix", "setgid_group = postdrop", "myhostname = postfix.bench",
                "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4", "mydestination =", "alias_maps =",
                "alias_database =", "mynetworks = 127.0.0.0/8", "relay_domains =",
                # Relay everything to the sink; new mail goes from cleanup to qmgr at once (no queue run needed).
                f"relayhost = [127.0.0.1]:{sink_port}", "default_transport = smtp", "relay_transport = smtp",
                "smtp_tls_security_level = none", "smtpd_client_connection_count_limit = 0",
                "default_process_limit = 200",
                "maillog_file = /dev/stdout", ""]))  # only /var and /dev/stdout are allowed (maillog_file_prefixes)
        with open(os.path.join(self.config, "master.cf"), "w") as f:
            f.write(self.MASTER_CF.replace("@LISTEN@", f"127.0.0.1:{self.port}"))
        self.logpath = os.path.join(folder, "maillog")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(["postfix", "-c", self.config, "start-fg"], stdout=self.log, stderr=subprocess.STDOUT)
        LIVE.append(self)
        wait_tcp(self.port, self.proc)

    def processes(self):
        """Pids of this instance's processes: the master (from its lock file) and its children."""
        try:
            with open(os.path.join(self.data, "master.lock")) as f:
                master = int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return []
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        return [master] + [int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == master]

    def cpu(self):
        # Own time plus that of exited children it reaped (smtpd, cleanup, smtp processes come and go).
        return sum(cpu_of(p) for p in self.processes())

    def rss(self):
        return sum(rss_of(p) for p in self.processes())

    def stop(self):
        if self.proc.returncode is None and self.proc.poll() is None:
            subprocess.run(["postfix", "-c", self.config, "stop"], capture_output=True)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def stop_all():
    while LIVE:
        thing = LIVE.pop()
        try:
            thing.stop()
        except Exception as e:  # keep tidying up
            print(f"  (stopping {type(thing).__name__}: {e})", file=sys.stderr)


def forget(*things):
    for t in things:
        if t in LIVE:
            LIVE.remove(t)


# ---------------------------------------------------------------------------------------------- measuring

class Prober(threading.Thread):
    """Sends a small uniquely-marked message every `interval` s; notes when each 250 came back."""

    def __init__(self, port, prefix, interval=0.1):
        super().__init__(daemon=True)
        self.port, self.prefix, self.interval = port, prefix, interval
        self.sent = {}  # token -> time of the 250
        self.errors = []
        self.halt = threading.Event()

    def run(self):
        n = 0
        while not self.halt.is_set():
            started = time.time()
            token = f"{self.prefix}p{n}"
            n += 1
            msg = (f"From: <{SENDER}>\r\nTo: <probe@example.test>\r\nSubject: probe {token}\r\n"
                   f"Message-ID: <{token}@probe.bench>\r\n\r\nlatency probe {token}\r\n")
            try:
                with smtplib.SMTP("127.0.0.1", self.port, local_hostname="probe.bench", timeout=60) as s:
                    s.sendmail(SENDER, ["probe@example.test"], msg)
                    self.sent[token] = time.time()
            except Exception as e:
                self.errors.append(f"{token}: {e}")
            self.halt.wait(max(0.0, self.interval - (time.time() - started)))


class RssSampler(threading.Thread):
    def __init__(self, groups, interval=0.5):
        super().__init__(daemon=True)
        self.groups, self.interval = groups, interval  # name -> callable returning pids
        self.peak = {name: 0.0 for name in groups}
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for name, pids in self.groups.items():
                self.peak[name] = max(self.peak[name], sum(rss_of(p) for p in pids()))
            self.halt.wait(self.interval)


PROBE_RE = re.compile(rb"Subject: probe (\S+)")


def read_dumps(sink, skip, probe_prefix):
    """Reads the sink's dump files not in `skip`: bench transactions, their recipients, last arrival, probes."""
    bench, rcpts, last = 0, 0, 0.0
    probes = {}  # token -> arrival
    duplicates = 0
    for name in sink.files():
        if name in skip:
            continue
        path = os.path.join(sink.dir, name)
        st = os.stat(path)
        with open(path, "rb") as f:
            head = f.read(16384)
        m = PROBE_RE.search(head) if st.st_size < 8192 else None
        if m and m.group(1).decode().startswith(probe_prefix):
            token = m.group(1).decode()
            duplicates += token in probes
            probes[token] = st.st_mtime_ns / 1e9
            continue
        bench += 1
        rcpts += head.count(b"X-Rcpt-Args:")
        last = max(last, st.st_mtime_ns / 1e9)
    return dict(bench=bench, rcpts=rcpts, last=last, probes=probes, duplicates=duplicates)


# Warm-up rounds (after the first, about ROUND_SECONDS of traffic each: the recompilation goes by time, not by
# messages) end when every .NET process spent at most JIT_QUIET of its CPU in the round in tiered recompilation.
JIT_QUIET = 0.05
ROUND_SECONDS = 3.0
MAX_WARMUP_SECONDS = 120


def measure(label, system, port, cpu_groups, rss_groups, sink, case, warmup, probe_prefix, jit_pids=None):
    """Warm-up, then the timed run against `port`; returns the figures for one system.

    `jit_pids` (name -> pid of a .NET process): the warm-up goes on in rounds of the case's traffic until each of
    them spends at most JIT_QUIET of its CPU in a round on tiered recompilation (the background JIT of hot methods),
    so the measured run sees the steady state a long-running process has, not its recompilation."""
    sessions, messages, size, rcpts = case["sessions"], case["messages"], case["size"], case["rcpts"]
    cpu_total = lambda: {k: f() for k, f in cpu_groups.items()}
    jit_pids = jit_pids or {}
    c0 = cpu_total()
    jit0 = {k: jit_cpu_of(pid) for k, pid in jit_pids.items()}
    sent, rounds, batch, warm_started = 0, 0, warmup, time.time()
    while True:
        r0, j0, t0 = cpu_total(), {k: jit_cpu_of(pid) for k, pid in jit_pids.items()}, time.time()
        smtp_source(port, sessions, batch, size, rcpts)
        sent += batch
        rounds += 1
        warm_ok = sink.wait(sent, idle=60)
        r1, j1 = cpu_total(), {k: jit_cpu_of(pid) for k, pid in jit_pids.items()}
        share = {k: jit_cpu_between(j0[k], j1[k]) / max(1e-9, r1[k] - r0[k]) for k in jit_pids}
        if os.environ.get("BENCH_DEBUG"):
            print(f"    warm-up round {rounds}: {batch} msgs in {time.time() - t0:.1f} s; " + ", ".join(
                f"{k} {per_k(r1[k] - r0[k], batch):.2f} s/1000, JIT {v:.0%}" for k, v in share.items()), flush=True)
        quiet = all(v <= JIT_QUIET for v in share.values())
        if not warm_ok or quiet or time.time() - warm_started > MAX_WARMUP_SECONDS:
            break
        batch = max(20, int(batch / max(0.1, time.time() - t0) * ROUND_SECONDS))
    jit_spent = {k: jit_cpu_between(jit0[k], jit_cpu_of(pid)) for k, pid in jit_pids.items()}
    warmup = sent
    c1 = cpu_total()
    warm_files = sink.files()
    if not warm_ok:
        print(f"  !!! {label}: warm-up not fully delivered ({len(warm_files)} of {warmup} at the sink)", flush=True)
    if jit_pids and not quiet:
        print(f"  !!! {label}: tiered recompilation still at " + ", ".join(f"{k} {v:.0%}" for k, v in share.items())
              + f" of the CPU after {rounds} warm-up rounds ({time.time() - warm_started:.0f} s)", flush=True)

    sampler = RssSampler(rss_groups)
    sampler.start()
    prober = Prober(port, probe_prefix)
    prober.start()
    started, elapsed = smtp_source(port, sessions, messages, size, rcpts)
    prober.halt.set()
    prober.join()
    expected = len(warm_files) + messages + len(prober.sent)
    complete = sink.wait(expected, idle=60)
    done = time.time()
    c2 = cpu_total()
    sampler.halt.set()
    sampler.join()

    d = read_dumps(sink, warm_files, probe_prefix)
    latencies = [d["probes"][t] - sent for t, sent in prober.sent.items() if t in d["probes"]]
    delivered_total = d["bench"] + len(d["probes"])
    span = (d["last"] - started) if d["last"] else (done - started)
    problems = []
    if not complete or d["bench"] < messages:
        problems.append(f"only {d['bench']} of {messages} messages delivered")
    if d["rcpts"] != messages * rcpts:
        problems.append(f"{d['rcpts']} recipients at the sink, expected {messages * rcpts}")
    if d["bench"] > messages:
        problems.append(f"{d['bench']} transactions for {messages} messages (split or duplicated)")
    missing = [t for t in prober.sent if t not in d["probes"]]
    if missing:
        problems.append(f"{len(missing)} probes not delivered")
    if prober.errors:
        problems.append(f"{len(prober.errors)} probes refused/failed, e.g. {prober.errors[0]}")
    if d["duplicates"]:
        problems.append(f"{d['duplicates']} probes delivered twice")
    for p in problems:
        print(f"  !!! {label}: {p}", flush=True)
    return dict(
        accepted_rate=messages / elapsed, send_seconds=elapsed,
        delivered=d["bench"], delivered_rcpts=d["rcpts"], delivered_rate=d["bench"] / span if span > 0 else 0.0,
        end_to_end_seconds=span, probes=len(latencies), probes_sent=len(prober.sent),
        latency_p50=percentile(latencies, 50), latency_p99=percentile(latencies, 99),
        latency_max=max(latencies) if latencies else float("nan"),
        cpu={k: c2[k] - c1[k] for k in c2}, cpu_denominator=delivered_total,
        warmup=warmup, warmup_rounds=rounds, warmup_cpu={k: c1[k] - c0[k] for k in c1}, warmup_jit_cpu=jit_spent,
        rss_sampled=sampler.peak, problems=problems)


def per_k(seconds, n):
    return 1000 * seconds / max(1, n)


def run_case(number, case, work, poll):
    name = case["name"]
    print(f"\n== case {number}: {name}: smtp-source -s {case['sessions']} -m {case['messages']} -l {case['size']} "
          f"-r {case['rcpts']}, after {case['warmup']} to warm up", flush=True)
    results = {}

    # Ours.
    folder = tempfile.mkdtemp(prefix="ours-", dir=work)
    os.chmod(folder, 0o755)
    sink = Sink(folder)
    azurite = Azurite(os.path.join(folder, "azurite"))
    ingress = Ingress(azurite.connection, sink.port, folder)
    functions = Functions(azurite.connection, sink.port, folder, poll=poll)
    worker = functions.worker_pid()
    r = measure("ours", "ours", ingress.port,
                {"ingress": lambda: cpu_of(ingress.proc.pid), "host": lambda: cpu_of(functions.proc.pid),
                 "worker": lambda: cpu_of(worker), "azurite": lambda: cpu_of(azurite.proc.pid)},
                {"ingress": lambda: [ingress.proc.pid], "host": lambda: [functions.proc.pid], "worker": lambda: [worker],
                 "azurite": lambda: [azurite.proc.pid]},
                sink, case, case["warmup"], f"c{number}o",
                jit_pids={"ingress": ingress.proc.pid, "host": functions.proc.pid, "worker": worker})
    if worker not in children_of(functions.proc.pid):
        print("  !!! ours: the worker was restarted during the case", flush=True)
    try:
        r["not_sent"] = {s: functions.metric("mta_delivery_recipients_total", status=s) for s in ("deferred", "bounced", "expired")}
    except Exception as e:
        r["not_sent"] = {"error": str(e)}
    _, rss_i = ingress.stop()
    _, rss_f = functions.stop()
    _, rss_a = azurite.stop()
    sink.stop()
    forget(sink, azurite, ingress, functions)
    # The host's getrusage peak covers its reaped worker too, so the host's own is the sampled one.
    r["rss"] = {"ingress": max(rss_i, r["rss_sampled"]["ingress"]), "host": r["rss_sampled"]["host"],
                "worker": r["rss_sampled"]["worker"], "azurite": max(rss_a, r["rss_sampled"]["azurite"])}
    r["log_warnings"], r["storage_error_responses"] = {}, {}
    for n, path in (("ingress", ingress.log), ("functions", functions.log)):
        lines = log_lines(path, r"\b(warn|fail|crit)\b|Exception")
        # The Azure SDK logs every 4xx storage reply as a warning: expected ones (a container or blob that is
        # created on first use, a lease another worker holds) are counted by error code, not treated as problems.
        sdk = [ln for ln in lines if "Azure.Core" in ln and "Error response" in ln]
        for ln in sdk:
            m = re.search(r"x-ms-error-code:(\w+)", ln) or re.search(r"Error response \[[^]]*\] (\d+)", ln)
            code = f"{n}:{m.group(1) if m else '?'}"
            r["storage_error_responses"][code] = r["storage_error_responses"].get(code, 0) + 1
        other = [ln for ln in lines if ln not in sdk]
        r["log_warnings"][n] = len(other)
        if other:
            print(f"  !!! ours: {len(other)} warning/error lines in the {n} log, e.g. " + " | ".join(s[:200] for s in other[:3]), flush=True)
    if any(v for v in r["not_sent"].values() if isinstance(v, float)):
        print(f"  !!! ours: recipients not sent: {r['not_sent']}", flush=True)
    results["ours"] = r

    # Postfix.
    folder = tempfile.mkdtemp(prefix="postfix-", dir=work)
    os.chmod(folder, 0o755)  # Postfix's daemons run as the postfix user
    sink = Sink(folder)
    postfix = Postfix(folder, sink.port)
    p = measure("postfix", "postfix", postfix.port, {"postfix": postfix.cpu}, {"postfix": postfix.processes},
                sink, case, case["warmup"], f"c{number}p")
    postfix.stop()
    sink.stop()
    forget(sink, postfix)
    p["rss"] = {"postfix": p["rss_sampled"]["postfix"]}
    bad = log_lines(postfix.logpath, r"status=(deferred|bounced)|warning:|fatal:|panic:")
    p["log_warnings"] = len(bad)
    if bad:
        print(f"  !!! postfix: {len(bad)} deferred/bounced/warning lines in its log, e.g. {bad[0][:200]}", flush=True)
    results["postfix"] = p

    o, pf = r, p
    ours_cpu = o["cpu"]["ingress"] + o["cpu"]["host"] + o["cpu"]["worker"]
    n_o, n_p = o["cpu_denominator"], pf["cpu_denominator"]
    print(f"  ours     accepted {o['accepted_rate']:6.0f} msg/s ({case['messages']} in {o['send_seconds']:.1f} s); "
          f"delivered {o['delivered_rate']:6.0f} msg/s end to end ({o['delivered']} msgs = transactions, "
          f"{o['delivered_rcpts']} rcpts, in {o['end_to_end_seconds']:.1f} s)")
    print(f"           latency p50 {o['latency_p50']:.3f} s, p99 {o['latency_p99']:.3f} s over {o['probes']} probes")
    print(f"           CPU ingress {per_k(o['cpu']['ingress'], n_o):.2f} + functions host {per_k(o['cpu']['host'], n_o):.2f} "
          f"+ worker {per_k(o['cpu']['worker'], n_o):.2f} = {per_k(ours_cpu, n_o):.2f} s/1000 delivered msg; peak RSS ingress "
          f"{o['rss']['ingress']:.0f} MiB, host {o['rss']['host']:.0f} MiB, worker {o['rss']['worker']:.0f} MiB")
    if o["storage_error_responses"]:
        print("           storage error replies (logged by the Azure SDK, whole run incl. warm-up): " +
              ", ".join(f"{k} {v}" for k, v in sorted(o["storage_error_responses"].items())))
    print(f"  azurite  CPU {per_k(o['cpu']['azurite'], n_o):.2f} s/1000 delivered msg, peak RSS {o['rss']['azurite']:.0f} MiB "
          f"(stands in for Azure Storage)")
    wc = o["warmup_cpu"]
    wj = o["warmup_jit_cpu"]
    print(f"  warm-up  ingress+host+worker CPU {per_k(wc['ingress'] + wc['host'] + wc['worker'], o['warmup']):.2f} s/1000 msg over the first "
          f"{o['warmup']} in {o['warmup_rounds']} rounds (JIT included; azurite {per_k(wc['azurite'], o['warmup']):.2f}); "
          f"tiered recompilation in it: ingress {wj['ingress']:.1f} s, host {wj['host']:.1f} s, worker {wj['worker']:.1f} s of CPU")
    print(f"  postfix  accepted {pf['accepted_rate']:6.0f} msg/s ({case['messages']} in {pf['send_seconds']:.1f} s); "
          f"delivered {pf['delivered_rate']:6.0f} msg/s end to end ({pf['delivered']} msgs = transactions, "
          f"{pf['delivered_rcpts']} rcpts, in {pf['end_to_end_seconds']:.1f} s)")
    print(f"           latency p50 {pf['latency_p50']:.3f} s, p99 {pf['latency_p99']:.3f} s over {pf['probes']} probes")
    print(f"           CPU all processes {per_k(pf['cpu']['postfix'], n_p):.2f} s/1000 delivered msg "
          f"(warm-up {per_k(pf['warmup_cpu']['postfix'], pf['warmup']):.2f}); peak RSS {pf['rss']['postfix']:.0f} MiB (all processes, sampled)")
    cpu_o, cpu_a, cpu_p = per_k(ours_cpu, n_o), per_k(ours_cpu + o["cpu"]["azurite"], n_o), per_k(pf["cpu"]["postfix"], n_p)
    ratio = dict(accepted_rate=o["accepted_rate"] / pf["accepted_rate"],
                 delivered_rate=o["delivered_rate"] / pf["delivered_rate"] if pf["delivered_rate"] else float("nan"),
                 cpu=cpu_o / cpu_p if cpu_p else float("nan"), cpu_with_azurite=cpu_a / cpu_p if cpu_p else float("nan"))
    goal = 0.35 if case["size"] <= 4096 else 0.5
    ratio["cpu_goal"] = goal
    print(f"  ratio    accepted rate {ratio['accepted_rate']:.2f}x Postfix, delivered rate {ratio['delivered_rate']:.2f}x; "
          f"CPU per message {ratio['cpu']:.2f}x Postfix ({ratio['cpu_with_azurite']:.2f}x with Azurite); "
          f"goal <= {goal}x: {'met' if ratio['cpu'] <= goal else 'NOT met'}", flush=True)
    results["ratio"] = ratio
    results["case"] = case
    return results


# ---------------------------------------------------------------------------------------------- cold start

def parse_log_time(line, near):
    """The functions host logs 'HH:mm:ss.fff ' (local time) at the start of each line."""
    m = re.match(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) ", line)
    if not m:
        return None
    day = datetime.datetime.fromtimestamp(near)
    t = day.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=int(m.group(3)),
                    microsecond=int(m.group(4)) * 1000).timestamp()
    if t - near > 43200:
        t -= 86400
    elif near - t > 43200:
        t += 86400
    return t


def cold_start(work):
    print("\n== cold start (Azurite already running)", flush=True)
    folder = tempfile.mkdtemp(prefix="cold-", dir=work)
    os.chmod(folder, 0o755)
    sink = Sink(folder)
    azurite = Azurite(os.path.join(folder, "azurite"))
    result = {}
    try:
        ingress = Ingress(azurite.connection, sink.port, folder, wait=False)
        msg = f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: cold start\r\n\r\nhello\r\n"
        listening, accepted, attempts = None, None, 0
        while accepted is None and time.time() - ingress.spawned < 60:
            if ingress.proc.poll() is not None:
                raise RuntimeError("the ingress exited")
            attempts += 1
            try:
                with smtplib.SMTP("127.0.0.1", ingress.port, local_hostname="cold.bench", timeout=30) as s:
                    listening = listening or time.time()
                    s.sendmail(SENDER, [RECIPIENT], msg)
                    accepted = time.time()
            except (OSError, smtplib.SMTPException):
                time.sleep(0.01)
        if accepted is None:
            raise RuntimeError("no 250 from the ingress within 60 s")
        result["ingress_spawn_to_250"] = accepted - ingress.spawned
        result["ingress_spawn_to_listening"] = listening - ingress.spawned
        print(f"  ingress    spawn -> first 250: {result['ingress_spawn_to_250']:.3f} s "
              f"(listening after {result['ingress_spawn_to_listening']:.3f} s, {attempts} connection attempts)")
        # That message was cleaned up by the ingress and waits on the delivery queue. For the cleanup stage, a
        # second ingress (not timed) that leaves cleanup to it puts one on the incoming queue.
        second = Ingress(azurite.connection, sink.port, folder, settings={"Ingress__CleanupInline": "false"})
        with smtplib.SMTP("127.0.0.1", second.port, local_hostname="cold.bench", timeout=30) as s:
            s.sendmail(SENDER, [RECIPIENT], msg)
        second.stop()
        forget(second)

        functions = Functions(azurite.connection, sink.port, folder, info_log=True, wait=False)
        ok = sink.wait(2, idle=60)
        arrived = min(sink.complete.values()) / 1e9 if ok else None
        time.sleep(0.3)  # the log lines are written by a background thread
        lines = list(functions.lines)
        first = lambda pattern: next(((seen, ln) for seen, ln in lines if re.search(pattern, ln)), (None, None))
        w_seen, w_line = first(r"Worker process started and initialized")
        c_seen, c_line = first(r"nrcpt=")
        d_seen, d_line = first(r"status=sent")
        spawned = functions.spawned
        worker_at = parse_log_time(w_line, spawned) if w_line else None
        cleanup_at = parse_log_time(c_line, spawned) if c_line else None
        sent_at = parse_log_time(d_line, spawned) if d_line else None
        result["functions_spawn_to_worker_ready"] = (worker_at or w_seen or float("nan")) - spawned
        result["functions_spawn_to_cleanup"] = (cleanup_at or c_seen or float("nan")) - spawned
        result["functions_spawn_to_status_sent"] = (sent_at or d_seen or float("nan")) - spawned
        result["functions_spawn_to_sink"] = (arrived - spawned) if arrived else float("nan")
        print(f"  functions  host spawn -> worker launched, connected and loaded: {result['functions_spawn_to_worker_ready']:.3f} s, "
              f"-> cleanup's line: {result['functions_spawn_to_cleanup']:.3f} s, "
              f"-> delivery's status=sent: {result['functions_spawn_to_status_sent']:.3f} s, "
              f"-> arrival at the sink: {result['functions_spawn_to_sink']:.3f} s")
        steps = []
        for label, pattern in (("gRPC endpoint up", r"gRPC endpoint listening"), ("worker spawned", r"Worker process \d+ spawned"),
                               ("worker connected", r"connected after"), ("functions loaded", r"initialized and loaded after"),
                               ("listeners started", r"Job host started")):
            seen, ln = first(pattern)
            at = parse_log_time(ln, spawned) if ln else None
            if at:
                steps.append(f"{label} {at - spawned:.3f}")
        print("             host's steps (s after its spawn): " + ", ".join(steps))
        if not ok:
            print("  !!! cold start: the message never reached the sink", flush=True)
        for seen, ln in lines:
            if re.search(r"\b(warn|fail|crit)\b|Exception", ln):
                print(f"  (functions log: {ln[:200]})")
        verdict = all(v <= 1.0 for k, v in result.items() if k not in ("ingress_spawn_to_listening", "functions_spawn_to_worker_ready"))
        print(f"  target <= 1 s: {'met' if verdict else 'NOT met'}", flush=True)
        result["target_met"] = verdict
        functions.stop()
        ingress.stop()
        forget(functions, ingress)
    finally:
        azurite.stop()
        sink.stop()
        forget(azurite, sink)
    return result


# ---------------------------------------------------------------------------------------------- gRPC hop

def rpc_hop():
    """Mta.Benchmarks rpc-hop against the functions app the cases ran: the host<->worker round trip and its CPU."""
    print("\n== the functions host's gRPC hop to the worker (Mta.Benchmarks rpc-hop, near-empty invocations)", flush=True)
    bench = os.path.join(ROOT, "bench", "Mta.Benchmarks", "bin", "Release", "net10.0", "Mta.Benchmarks.dll")
    if not os.path.exists(bench):
        subprocess.run(["dotnet", "build", os.path.join(ROOT, "bench", "Mta.Benchmarks"), "-c", "Release", "-v", "q", "-nologo"],
                       check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run(["dotnet", bench, "rpc-hop", "--app", PROGRAMS["functions"], "--invocations", "20000"],
                         capture_output=True, text=True, timeout=600)
    print("  " + out.stdout.strip().replace("\n", "\n  "), flush=True)
    if out.returncode != 0:
        print(f"  !!! rpc-hop failed: {out.stderr[-2000:]}", flush=True)
        return {"error": out.stderr[-2000:]}
    nums = lambda pattern: [float(x) for x in re.search(pattern, out.stdout).groups()]
    p50, p99 = nums(r"p50 (\d+) us, p99 (\d+) us")
    rate, host, worker = nums(r"(\d+) invocations/s; CPU per invocation: host (\d+) us, worker (\d+) us")
    return {"latency_p50_us": p50, "latency_p99_us": p99, "rate_16_in_flight": rate, "host_cpu_us": host, "worker_cpu_us": worker}


# ---------------------------------------------------------------------------------------------- storage ops

def storage_pass(work, size, rcpts, messages, warmup, poll):
    folder = tempfile.mkdtemp(prefix="storage-", dir=work)
    os.chmod(folder, 0o755)
    log = os.path.join(folder, "azurite-requests.log")
    sink = Sink(folder)
    azurite = Azurite(os.path.join(folder, "azurite"), debug_log=log)
    ingress = Ingress(azurite.connection, sink.port, folder)
    functions = Functions(azurite.connection, sink.port, folder, poll=poll)
    try:
        smtp_source(ingress.port, 20, warmup, size, rcpts)
        sink.wait(warmup, idle=60)
        time.sleep(2)  # the warm-up's last deletes and completion records
        warm = sink.count()
        start = os.path.getsize(log)
        smtp_source(ingress.port, 20, messages, size, rcpts)
        ok = sink.wait(warm + messages, idle=60)
        time.sleep(2)  # the last deletes and records land after the sink has the message
        delivered = sink.count() - warm
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    finally:
        functions.stop()
        ingress.stop()
        azurite.stop()
        sink.stop()
        forget(functions, ingress, azurite, sink)
    counts = {}
    for m in re.finditer(r"Operation=(\w+)", text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    receives = counts.get("Messages_Dequeue", 0)
    work_ops = {k: v for k, v in counts.items() if k != "Messages_Dequeue" and k not in OVERHEAD_OPS}
    total = sum(work_ops.values())
    label = f"{size // 1024} KiB x {rcpts} rcpt"
    if not ok or delivered != messages:
        print(f"  !!! storage pass {label}: {delivered} of {messages} delivered", flush=True)
    n = max(1, delivered)
    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(work_ops.items()))
    print(f"  {label:<16} {total / n:5.2f} requests per delivered message besides receives, "
          f"{receives / n:5.2f} receives (polls included); over {delivered} messages", flush=True)
    print(f"  {'':<16} {detail}", flush=True)
    return dict(size=size, rcpts=rcpts, messages=messages, delivered=delivered, per_message=total / n,
                receives_per_message=receives / n, operations={k: v / n for k, v in sorted(counts.items())})


# ---------------------------------------------------------------------------------------------- main

def cases(scale):
    out = []
    for size, size_name in ((2048, "2 KiB"), (102400, "100 KiB")):
        for rcpts in (1, 50):
            for sessions in (20, 100):
                # Chosen so that the full run takes about 9 minutes on 2 cores. The warm-up is the first round;
                # measure() adds rounds until .NET's tiered recompilation is over.
                if size == 2048 and rcpts == 1:
                    messages, warmup = 5000, 2500
                elif size == 2048:
                    messages, warmup = 1500, 600
                elif rcpts == 1:
                    messages, warmup = 2000, 1000
                else:
                    messages, warmup = 1000, 300
                out.append(dict(name=f"{size_name} x {rcpts} rcpt, {sessions} sessions", size=size, rcpts=rcpts,
                                sessions=sessions, messages=max(20, messages // scale), warmup=max(20, warmup // scale)))
    return out


# Where each program runs from: the Release build, or (--published) `dotnet publish` output as the images ship it.
PROGRAMS = {project: os.path.join(ROOT, project, "bin", "Release", "net10.0")
            for project in ("ingress", "functions", "functions-host")}


def ensure_builds():
    for project, dll in (("ingress", "Mta.Ingress.dll"), ("functions", "Mta.Functions.dll"),
                         ("functions-host", "Mta.Functions.Host.dll")):
        if not os.path.exists(os.path.join(ROOT, project, "bin", "Release", "net10.0", dll)):
            print(f"building {project} (Release)", flush=True)
            subprocess.run(["dotnet", "build", os.path.join(ROOT, project), "-c", "Release", "-v", "q", "-nologo"],
                           check=True, stdout=subprocess.DEVNULL)


def publish(folder):
    """`dotnet publish -c Release -o DIR` for each program, as the Dockerfiles run it; PROGRAMS then point there."""
    for project in PROGRAMS:
        out = os.path.join(folder, project)
        print(f"publishing {project} (as the Dockerfiles do)", flush=True)
        subprocess.run(["dotnet", "publish", os.path.join(ROOT, project), "-c", "Release", "-o", out, "-v", "q", "-nologo"],
                       check=True, stdout=subprocess.DEVNULL)
        PROGRAMS[project] = out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages (a smoke test of the script)")
    parser.add_argument("--cases", help="comma-separated case numbers (1-8) or substrings of their names")
    parser.add_argument("--no-coldstart", action="store_true")
    parser.add_argument("--no-storage", action="store_true")
    parser.add_argument("--no-rpc", action="store_true", help="skip the gRPC hop measurement")
    parser.add_argument("--poll", help="override host.json's maxPollingInterval (e.g. 00:00:00.500); default: host.json's 2 s")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, dumps)")
    parser.add_argument("--json", help="also write the summary to this file")
    parser.add_argument("--published", action="store_true",
                        help="run the programs from `dotnet publish` output (ReadyToRun, as the images ship them) "
                             "instead of the Release build")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Postfix's master needs it")
    for tool in ("smtp-source", "smtp-sink", "postfix", "dotnet"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    ensure_builds()

    scale = 10 if args.quick else 1
    if args.quick:
        global MAX_WARMUP_SECONDS
        MAX_WARMUP_SECONDS = 0  # one warm-up round: the script is checked, not the steady state
    all_cases = cases(scale)
    chosen = list(enumerate(all_cases, 1))
    if args.cases:
        wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
        chosen = [(i, c) for i, c in chosen if any((w.isdigit() and int(w) == i) or (not w.isdigit() and w in c["name"]) for w in wanted)]
    print("Cases:")
    for i, c in enumerate(all_cases, 1):
        mark = "*" if any(i == j for j, _ in chosen) else " "
        print(f"  {mark}{i}. {c['name']}: {c['messages']} messages after {c['warmup']}")
    print(f"Settings: everything at its defaults (host.json maxPollingInterval "
          f"{args.poll or '2 s'}, traffic shaping on, delivery recipient limit 50); Postfix: relayhost, "
          f"its default concurrency 20 and recipient limit 50.", flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    work = tempfile.mkdtemp(prefix="mta-system-bench-")
    os.chmod(work, 0o755)
    if args.published:
        publish(os.path.join(work, "published"))
    summary = {"quick": args.quick, "max_polling_interval": args.poll or "host.json (00:00:02)", "cases": {}}
    began = time.time()
    try:
        if not args.no_coldstart:
            summary["cold_start"] = cold_start(work)
        for i, case in chosen:
            summary["cases"][case["name"]] = run_case(i, case, work, args.poll)
        if not args.no_rpc:
            summary["rpc_hop"] = rpc_hop()
        if not args.no_storage:
            print("\n== storage requests per delivered message (Azurite --debug request log), 20 sessions", flush=True)
            summary["storage"] = []
            for size in (2048, 102400):
                for rcpts in (1, 50):
                    messages = (300 if rcpts == 1 else 150) // (5 if args.quick else 1)
                    summary["storage"].append(storage_pass(work, size, rcpts, messages, 20, args.poll))
        summary["elapsed_seconds"] = time.time() - began
        print("\n== summary (rates in msg/s; CPU in s per 1000 delivered messages; latency p50/p99 in s)")
        print(f"  {'case':<30} {'accepted ours/pf':>17} {'delivered ours/pf':>18} {'latency ours':>13} {'latency pf':>11} "
              f"{'CPU ours(+az)/pf':>18} {'ratio rate/CPU':>15}")
        for name, res in summary["cases"].items():
            o, p = res["ours"], res["postfix"]
            co = per_k(o["cpu"]["ingress"] + o["cpu"]["host"] + o["cpu"]["worker"], o["cpu_denominator"])
            ca = per_k(o["cpu"]["azurite"], o["cpu_denominator"])
            cp = per_k(p["cpu"]["postfix"], p["cpu_denominator"])
            flag = " !!!" if o["problems"] or p["problems"] else ""
            print(f"  {name:<30} {o['accepted_rate']:7.0f} / {p['accepted_rate']:<7.0f} {o['delivered_rate']:7.0f} / {p['delivered_rate']:<8.0f} "
                  f"{o['latency_p50']:5.2f}/{o['latency_p99']:<5.2f}  {p['latency_p50']:4.2f}/{p['latency_p99']:<5.2f} "
                  f"{co:5.2f}(+{ca:.2f}) / {cp:<5.2f} {res['ratio']['delivered_rate']:5.2f}x / {res['ratio']['cpu']:.2f}x{flag}")
        print(f"\nTotal time {summary['elapsed_seconds'] / 60:.1f} min")
        text = json.dumps(summary, indent=1, default=str)
        print("\n" + text)
        if args.json:
            with open(args.json, "w") as f:
                f.write(text)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        sys.exit(130)
    finally:
        stop_all()
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

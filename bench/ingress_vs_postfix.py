#!/usr/bin/env python3
"""Ingress benchmark: the MTA's ingress (with Azurite) against Postfix's smtpd, same machine, same run.

Drives both with Postfix's smtp-source and prints, per case, messages/second accepted, CPU seconds per
1,000 accepted messages (ours: the ingress; Postfix: every Postfix process, which are smtpd, cleanup and
their helpers), Azurite's CPU on its own line, peak RSS, and the storage operations each accepted
message cost. Then opens idle sessions against the ingress and reports its RSS.

The milter case puts the same milter in front of both (tests/Mta.Tests/Peers/scripted_milter.py, a pymilter over
Sendmail's libmilter that adds, inserts, changes and deletes header fields on every message; a copy per side): the
milter's own CPU is not counted, and the events it was sent per message (each a round trip: that milter answers
every one) are counted from its event log on both sides.

The postscreen case turns on postscreen's greeting pause (2 s) and a DNS list (served by dnsmasq on 127.0.0.53:53;
Postfix's dnsblog asks it through /etc/resolv.conf, bound over in Postfix's own mount namespace) on both sides, and
anvil's connection, message and recipient rates on both (limits far above the load: counted, never reached). smtp-source
connects from one address, so after the first sessions every one is a remembered pass (Postfix's PASS OLD, handed to
smtpd; ours, a lookup in memory): the steady state of clients that come back. It reports the storage requests per
session that the shared pass cache and rates cost the ingress.

Both sides queue durably and deliver nothing: Postfix puts every message on hold (its queue file is
fsynced before the 250, as always); the ingress answers 250 after the blob and the queue message are
stored (Azurite persists to disk). Run from the repository root after `make test` or `npm ci`:

    python3 bench/ingress_vs_postfix.py [--quick] [--idle 10000] [--milter-only] [--postscreen-only]

Needs: dotnet, node_modules (Azurite), Debian's postfix (smtp-source), python3-milter and dnsmasq, root for Postfix.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from processes import cpu_of, free_port, rss_of, wait_tcp  # noqa: E402  (shared with the other benchmark)






def stop(proc):
    """Stops a process with SIGTERM and returns (user+sys CPU seconds of it and its waited-for children, peak RSS MiB)."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, _, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        return 0.0, 0.0
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024






def smtp_source(port, sessions, messages, size, recipients=1):
    args = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-c",
            "-f", "bench@sender.test", "-t", "user@localhost", "-r", str(recipients), f"127.0.0.1:{port}"]
    started = time.time()
    out = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.time() - started
    if out.returncode != 0:
        raise RuntimeError("smtp-source failed: " + out.stderr[-500:])
    return elapsed


class Azurite:
    def __init__(self, folder):
        self.blob, self.queue, self.table = free_port(), free_port(), free_port()
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, "node_modules", ".bin", "azurite"), "--silent", "--skipApiVersionCheck", "--disableTelemetry",
             "--location", folder, "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
             "--blobPort", str(self.blob), "--queuePort", str(self.queue), "--tablePort", str(self.table)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_tcp(self.queue, self.proc)
        wait_tcp(self.blob, self.proc)
        self.connection = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                           "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                           f"BlobEndpoint=http://127.0.0.1:{self.blob}/devstoreaccount1;"
                           f"QueueEndpoint=http://127.0.0.1:{self.queue}/devstoreaccount1;"
                           f"TableEndpoint=http://127.0.0.1:{self.table}/devstoreaccount1;")


class Milter:
    """The scripted milter (pymilter), writing each event it gets to a log, one line per event."""
    SCRIPT = os.path.join(ROOT, "tests", "Mta.Tests", "Peers", "scripted_milter.py")

    def __init__(self, folder):
        self.port = free_port()
        self.events = os.path.join(folder, "milter-events.jsonl")
        self.proc = subprocess.Popen(["/usr/bin/python3", self.SCRIPT, f"inet:{self.port}@127.0.0.1", self.events, "bench"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_tcp(self.port, self.proc)
        self.address = f"inet:127.0.0.1:{self.port}"

    def count(self):
        """Events sent so far (connect and close included)."""
        if not os.path.exists(self.events):
            return 0
        with open(self.events) as f:
            return sum(1 for _ in f)


class Screen:
    """dnsmasq serving a DNS list on 127.0.0.53:53, and postscreen's settings for both sides (the same pause and list)."""
    SITES = "bl.test=127.0.0.[2..11]*3, wl.test*-2"
    GREET_WAIT = 2
    RATE = 1000000  # per minute: counted, never reached

    def __init__(self, folder):
        self.resolv = os.path.join(folder, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.53\n")
        self.proc = subprocess.Popen(["dnsmasq", "--no-daemon", "--port", "53", "--listen-address", "127.0.0.53", "--bind-interfaces",
                                      "--no-resolv", "--no-hosts", "--local=/test/", "--host-record=8.0.0.127.bl.test,127.0.0.4"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def ingress_settings(self):
        return {"Ingress__Postscreen": "true", "Ingress__PostscreenGreetWaitSeconds": str(self.GREET_WAIT),
                "Ingress__PostscreenGreetAction": "enforce", "Ingress__PostscreenDnsblSites": self.SITES,
                "Ingress__PostscreenDnsblAction": "enforce", "Ingress__TrustedNetworks__0": "10.0.0.0/8",
                "Mta__DnsServers__0": "127.0.0.53:53",
                "Ingress__ConnectionRatePerClient": str(self.RATE), "Ingress__MessageRatePerClient": str(self.RATE),
                "Ingress__RecipientRatePerClient": str(self.RATE)}

    def postfix_settings(self):
        return [f"postscreen_greet_wait = {self.GREET_WAIT}s", "postscreen_greet_action = enforce",
                f"postscreen_dnsbl_sites = {self.SITES}", "postscreen_dnsbl_action = enforce",
                "postscreen_cache_map = btree:$data_directory/postscreen_cache", "mynetworks = 10.0.0.0/8",
                f"smtpd_client_connection_rate_limit = {self.RATE}",
                f"smtpd_client_message_rate_limit = {self.RATE}", f"smtpd_client_recipient_rate_limit = {self.RATE}"]


class Ingress:
    def __init__(self, storage, max_connections=1000, milter=None, settings=None):
        self.port, self.health = free_port(), free_port()
        env = dict(os.environ)
        env.update({
            "AzureWebJobsStorage": storage,
            "Ingress__Port": str(self.port),
            "Ingress__HealthPort": str(self.health),
            "Ingress__MaxConnections": str(max_connections),
            "Mta__MyHostname": "mta.bench",
            "Logging__LogLevel__Default": "Warning",
        })
        if milter:
            env["Ingress__Milters"] = milter
        env.update(settings or {})
        dll = os.path.join(ROOT, "ingress", "bin", "Release", "net10.0", "Mta.Ingress.dll")
        self.proc = subprocess.Popen(["dotnet", dll], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_tcp(self.port, self.proc)
        wait_tcp(self.health, self.proc)

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.health}/metrics").read().decode()
        return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


class Postfix:
    # The same master.cf as the tests' Postfix peer.
    MASTER_CF = os.path.join(ROOT, "tests", "postfix-peer", "master.cf")

    def __init__(self, folder, milter=None, screen=None):
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
                "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4", "mydestination =", "alias_maps =", "alias_database =",
                "mynetworks = 127.0.0.0/8", "relay_domains = static:all", "default_transport = discard:",
                # Queue durably, deliver nothing: the 250 comes after cleanup's fsync, as always; the message then waits on hold.
                "smtpd_end_of_data_restrictions = check_client_access static:HOLD",
                "smtpd_client_connection_count_limit = 0", "default_process_limit = 200",
                "maillog_file = /dev/stdout"]
                + ([f"smtpd_milters = {milter}", "milter_default_action = tempfail"] if milter else [])
                + (screen.postfix_settings() if screen else []) + [""]))
            # only /var and /dev/stdout are allowed as maillog_file (maillog_file_prefixes)
        with open(os.path.join(self.config, "master.cf"), "w") as f:
            with open(self.MASTER_CF) as template:
                master = template.read().replace("@LISTEN@", f"127.0.0.1:{self.port}")
                if screen:
                    master = master.replace(f"127.0.0.1:{self.port} inet n - n - - smtpd", f"127.0.0.1:{self.port} inet n - n - 1 postscreen\n"
                                            "smtpd pass - - n - - smtpd\ndnsblog unix - - n - 0 dnsblog\ntlsproxy unix - - n - 0 tlsproxy")
                f.write(master)
        self.log = open(os.path.join(folder, "maillog"), "w")
        command = ["postfix", "-c", self.config, "start-fg"]
        if screen:
            # dnsblog asks the system's resolver: give this Postfix a resolv.conf of its own that names the test's dnsmasq.
            command = ["unshare", "-m", "sh", "-c", f"mount --bind {screen.resolv} /etc/resolv.conf && exec postfix -c {self.config} start-fg"]
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        wait_tcp(self.port, self.proc)

    def processes(self):
        """Pids of this instance's processes: the master (from its lock file) and its children."""
        with open(os.path.join(self.data, "master.lock")) as f:
            master = int(f.read().strip())
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        return [master] + [int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == master]

    def cpu(self):
        total = 0.0
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                tick = os.sysconf("SC_CLK_TCK")
                # Own time plus that of exited children it reaped (smtpd and cleanup processes come and go).
                total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
            except FileNotFoundError:
                pass
        return total

    def rss(self):
        return sum(rss_of(p) for p in self.processes() if os.path.exists(f"/proc/{p}"))

    def stop(self):
        subprocess.run(["postfix", "-c", self.config, "stop"], capture_output=True)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_case(name, sessions, messages, size, warmup, work, with_milter=False, with_screen=False):
    print(f"\n== {name}: smtp-source -s {sessions} -m {messages} -l {size}, after {warmup} to warm up", flush=True)
    results = {}

    folder = tempfile.mkdtemp(prefix="bench-ours-", dir=work)
    azurite = Azurite(os.path.join(folder, "azurite"))
    milter = Milter(folder) if with_milter else None
    screen = Screen(folder) if with_screen else None
    ingress = Ingress(azurite.connection, milter=milter.address if milter else None, settings=screen.ingress_settings() if screen else None)
    # The first messages pay for the JIT: tier-0 code, then the background recompilation of the hot methods
    # (measured at 2-3 s of CPU in the first few thousand). Reported on its own line; the steady state is
    # what a long-running pod costs per message.
    cold_cpu0 = cpu_of(ingress.proc.pid)
    smtp_source(ingress.port, sessions, warmup, size)
    cold_cpu = cpu_of(ingress.proc.pid) - cold_cpu0
    warm = ingress.metric("mta_ingress_messages_accepted_total")
    ingress_cpu0, azurite_cpu0 = cpu_of(ingress.proc.pid), cpu_of(azurite.proc.pid)
    peak = rss_of(ingress.proc.pid)
    events0 = milter.count() if milter else 0
    shared0 = ingress.metric("mta_ingress_shared_state_requests_total")
    elapsed = smtp_source(ingress.port, sessions, messages, size)
    accepted = ingress.metric("mta_ingress_messages_accepted_total") - warm
    shared = ingress.metric("mta_ingress_shared_state_requests_total") - shared0
    time.sleep(0.5)  # the last sessions' close events
    events = milter.count() - events0 if milter else 0
    ingress_cpu = cpu_of(ingress.proc.pid) - ingress_cpu0
    azurite_cpu = cpu_of(azurite.proc.pid) - azurite_cpu0
    _, ingress_peak = stop(ingress.proc)
    stop(azurite.proc)
    if milter:
        stop(milter.proc)
    if screen:
        stop(screen.proc)
    results["ours"] = dict(rate=accepted / elapsed, accepted=accepted, cpu=ingress_cpu, azurite=azurite_cpu, rss=max(peak, ingress_peak),
                           warmup_cpu=cold_cpu, warmup=warm, milter_events=events, shared_requests=shared)

    folder = tempfile.mkdtemp(prefix="bench-postfix-", dir=work)
    os.chmod(folder, 0o755)  # Postfix's daemons run as the postfix user
    milter = Milter(folder) if with_milter else None
    screen = Screen(folder) if with_screen else None
    postfix = Postfix(folder, milter=milter.address if milter else None, screen=screen)
    hold = os.path.join(folder, "queue", "hold")
    smtp_source(postfix.port, sessions, warmup, size)  # the same warm-up: smtpd and cleanup processes started, caches filled
    # Then empty the hold queue: it is one flat directory, and thousands of files in it slowed Postfix's
    # measured run by a third (1.48 against 1.08 s/1000 msg).
    subprocess.run(["postsuper", "-c", postfix.config, "-d", "ALL", "hold"], capture_output=True, check=True)
    warm = sum(len(files) for _, _, files in os.walk(hold))
    cpu0 = postfix.cpu()
    events0 = milter.count() if milter else 0
    elapsed = smtp_source(postfix.port, sessions, messages, size)
    rss = postfix.rss()
    cpu = postfix.cpu() - cpu0
    held = sum(len(files) for _, _, files in os.walk(hold)) - warm
    time.sleep(0.5)
    events = milter.count() - events0 if milter else 0
    postfix.stop()
    if milter:
        stop(milter.proc)
    if screen:
        stop(screen.proc)
    results["postfix"] = dict(rate=held / elapsed, accepted=held, cpu=cpu, rss=rss, milter_events=events)

    ours, pf = results["ours"], results["postfix"]
    print(f"  ours     {ours['rate']:8.0f} msg/s accepted ({ours['accepted']:.0f}), ingress CPU {1000 * ours['cpu'] / max(1, ours['accepted']):.2f} s/1000 msg, peak RSS {ours['rss']:.0f} MiB")
    print(f"  warm-up  ingress CPU {1000 * ours['warmup_cpu'] / max(1, ours['warmup']):.2f} s/1000 msg over the first {ours['warmup']:.0f} (JIT included)")
    print(f"  azurite  CPU {1000 * ours['azurite'] / max(1, ours['accepted']):.2f} s/1000 msg (stands in for Azure Storage)")
    print(f"  postfix  {pf['rate']:8.0f} msg/s accepted ({pf['accepted']}), smtpd+cleanup+helpers CPU {1000 * pf['cpu'] / max(1, pf['accepted']):.2f} s/1000 msg, RSS at end {pf['rss']:.0f} MiB")
    print(f"  ratio    rate {ours['rate'] / pf['rate']:.2f}x Postfix; CPU per message {(ours['cpu'] / max(1, ours['accepted'])) / (pf['cpu'] / max(1, pf['accepted'])):.2f}x Postfix")
    if with_milter:
        print(f"  milter   events (round trips) per message: ours {ours['milter_events'] / max(1, ours['accepted']):.2f}, "
              f"Postfix {pf['milter_events'] / max(1, pf['accepted']):.2f} (the milter's CPU not counted)")
    if with_screen:
        print(f"  shared   pass cache and client rates: {ours['shared_requests']:.0f} storage requests for {ours['accepted']:.0f} sessions "
              f"({ours['shared_requests'] / max(1, ours['accepted']):.4f} per session)")
    # Not counted by this script: read off MessageAcceptor's code path (see docs/benchmarks.md).
    print(f"  storage  {1 if size <= 48 * 1024 else 2} request(s) per accepted message by the code path "
          f"({'queue put, bytes inline' if size <= 48 * 1024 else 'blob put + queue put'})")
    return results


def idle_sessions(count, work):
    print(f"\n== {count} idle sessions against the ingress", flush=True)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the ingress inherits it
    if hard < count + 1000:
        print(f"  open-file limit {hard} is below {count + 1000}: raise it (ulimit -Hn) first")
        return
    folder = tempfile.mkdtemp(prefix="bench-idle-", dir=work)
    azurite = Azurite(os.path.join(folder, "azurite"))
    ingress = Ingress(azurite.connection, max_connections=count + 100)
    before = rss_of(ingress.proc.pid)
    sockets = []
    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", ingress.port))
            sockets.append(s)
        greeted = 0
        for s in sockets:
            s.settimeout(30)
            if s.recv(100).startswith(b"220"):
                greeted += 1
        time.sleep(2)
        during = rss_of(ingress.proc.pid)
        print(f"  {greeted} sessions greeted; ingress RSS {before:.0f} MiB before, {during:.0f} MiB with them open "
              f"({1024 * (during - before) / max(1, greeted):.1f} KiB per session)")
    finally:
        for s in sockets:
            s.close()
        stop(ingress.proc)
        stop(azurite.proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the script)")
    parser.add_argument("--idle", type=int, default=10000, help="idle sessions to open (0: skip)")
    parser.add_argument("--milter-only", action="store_true", help="only the case with a milter in front of both")
    parser.add_argument("--postscreen-only", action="store_true", help="only the case with postscreen and anvil's rates on both")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Postfix's master needs it")
    subprocess.run(["dotnet", "build", os.path.join(ROOT, "ingress"), "-c", "Release", "-v", "q", "-nologo"], check=True,
                   stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="mta-bench-")
    os.chmod(work, 0o755)
    scale = 10 if args.quick else 1
    try:
        cases = [("2 KiB, 20 sessions", 20, 20000 // scale, 2048, 10000 // scale, False, False),
                 ("100 KB, 100 sessions", 100, 4000 // scale, 100000, 4000 // scale, False, False),
                 ("2 KiB, 20 sessions, a milter in front", 20, 5000 // scale, 2048, 2000 // scale, True, False),
                 ("2 KiB, 20 sessions, postscreen (2 s pause, a DNS list) and anvil's rates", 20, 10000 // scale, 2048, 2000 // scale, False, True)]
        if args.milter_only:
            cases = [c for c in cases if c[5]]
        if args.postscreen_only:
            cases = [c for c in cases if c[6]]
        summary = {name: run_case(name, s, m, l, w, work, milt, scr) for name, s, m, l, w, milt, scr in cases}
        if args.idle and not (args.milter_only or args.postscreen_only):
            idle_sessions(args.idle // scale, work)
        print("\n" + json.dumps(summary, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

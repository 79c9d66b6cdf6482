#!/usr/bin/env python3
"""What events cost (issue #23): storage requests per delivered message with Mta:Events on and off, and the webhook
stage's throughput per replica into a local receiver.

Storage: the same pass as system_vs_postfix.py's (Azurite --debug request log; ingress with cleanup, the functions
host with its isolated worker, smtp-sink), 2 KiB single-recipient messages from smtp-source over --sessions sessions,
after a warm-up; run once with events off and once with them on, the events then posted to a local webhook receiver
(a Python http.server in this process that checks each batch's signature). Receives (queue GETs, empty polls
included) are reported apart; the once-only creations are left out. The difference is what events add per message.

Throughput: a backlog is made first (events on, the functions host running every function but Events; --backlog
messages, two events each: Reception and Delivery), then a functions host with only the Events function is started
(one replica, host.json's batch size) and timed from its first POST to the receiver having every event; its CPU
(host + worker) per 1,000 events is read from /proc.

Run from the repository root after a Release build:

    python3 bench/events_cost.py                       # 2,000 messages, 20 sessions; backlog of 5,000 messages
    python3 bench/events_cost.py --messages 300 --backlog 500   # a quick check of the script

Needs: dotnet, node_modules (Azurite), Debian's postfix (smtp-source, smtp-sink).
"""
import argparse
import hashlib
import hmac
import http.server
import json
import os
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from processes import cpu_of, free_port  # noqa: E402
from system_vs_postfix import OVERHEAD_OPS, Azurite, Functions, Ingress, Sink, ensure_builds, forget, smtp_source, stop_all, children_of  # noqa: E402

SECRET = b"bench-webhook-secret-0123456789"


class Receiver:
    """A webhook endpoint: counts events (distinct ids too) and checks every batch's signature."""

    def __init__(self):
        self.port = free_port()
        self.ids, self.events, self.bad, self.first, self.last = set(), 0, 0, None, None
        lock = threading.Lock()
        outer = self

        class Hook(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint answers

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp, _, mac = self.headers.get("X-Mta-Signature", "").partition(",v1=")
                expected = hmac.new(SECRET, stamp.removeprefix("t=").encode() + b"." + body, hashlib.sha256).hexdigest()
                batch = json.loads(body)
                with lock:
                    now = time.time()
                    outer.first = outer.first or now
                    outer.last = now
                    outer.events += len(batch)
                    outer.ids.update(e["id"] for e in batch)
                    outer.bad += 0 if hmac.compare_digest(expected, mac) else 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, expected, idle=60):
        last, changed = -1, time.time()
        while len(self.ids) < expected:
            if len(self.ids) != last:
                last, changed = len(self.ids), time.time()
            if time.time() - changed > idle:
                return False
            time.sleep(0.05)
        return True

    def stop(self):
        self.server.shutdown()


def event_settings(folder, receiver):
    secret, hooks = os.path.join(folder, "webhook.secret"), os.path.join(folder, "webhooks")
    with open(secret, "wb") as f:
        f.write(SECRET)
    with open(hooks, "w") as f:
        f.write(f"* http://127.0.0.1:{receiver.port}/events {secret}\n")
    return {"Mta__Events": "true", "Mta__WebhooksFile": hooks}


def storage(work, events, messages, sessions, warmup):
    folder = tempfile.mkdtemp(prefix="events-storage-", dir=work)
    os.chmod(folder, 0o755)
    log = os.path.join(folder, "azurite-requests.log")
    receiver = Receiver() if events else None
    settings = event_settings(folder, receiver) if events else {}
    sink = Sink(folder)
    azurite = Azurite(os.path.join(folder, "azurite"), debug_log=log)
    ingress = Ingress(azurite.connection, sink.port, folder, settings=settings)
    functions = Functions(azurite.connection, sink.port, folder, settings=settings)
    try:
        smtp_source(ingress.port, sessions, warmup, 2048, 1)
        sink.wait(warmup, idle=60)
        if receiver:
            receiver.wait(2 * warmup)
        time.sleep(2)
        warm = sink.count()
        start = os.path.getsize(log)
        smtp_source(ingress.port, sessions, messages, 2048, 1)
        ok = sink.wait(warm + messages, idle=60)
        if receiver:
            ok = receiver.wait(2 * (warm + messages)) and ok
        time.sleep(3)  # the last deletes and records land after the sink and the receiver have everything
        delivered = sink.count() - warm
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    finally:
        stop_all()
        if receiver:
            receiver.stop()
        forget(functions, ingress, azurite, sink)
    counts = {}
    for m in re.finditer(r"Operation=(\w+)", text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    n = max(1, delivered)
    work_ops = {k: v / n for k, v in counts.items() if k != "Messages_Dequeue" and k not in OVERHEAD_OPS}
    result = dict(events=events, delivered=delivered, ok=ok and delivered == messages,
                  per_message=sum(work_ops.values()), receives=counts.get("Messages_Dequeue", 0) / n, operations=work_ops)
    if receiver:
        result.update(webhook_events=receiver.events, distinct=len(receiver.ids), bad_signatures=receiver.bad)
    label = "events on " if events else "events off"
    print(f"  {label}: {result['per_message']:.2f} requests per delivered message besides receives, "
          f"{result['receives']:.2f} receives; over {delivered} messages{'' if result['ok'] else ' !!! incomplete'}", flush=True)
    print("    " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(work_ops.items())), flush=True)
    return result


def queue_ids(sink):
    """Deliveries at the sink per queue id (our Received line's "with SMTP id")."""
    counts = {}
    for name in sink.files():
        with open(os.path.join(sink.dir, name), errors="replace") as f:
            found = re.search(r"with E?SMTP id ([0-9A-F]{16,})", f.read())
        if found:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    return counts


def throughput(work, messages, sessions):
    folder = tempfile.mkdtemp(prefix="events-throughput-", dir=work)
    os.chmod(folder, 0o755)
    receiver = Receiver()
    settings = event_settings(folder, receiver)
    sink = Sink(folder)
    azurite = Azurite(os.path.join(folder, "azurite"))
    ingress = Ingress(azurite.connection, sink.port, folder, settings=settings)
    allow = {f"AzureFunctionsJobHost__functions__{i}": name for i, name in enumerate(("Cleanup", "Delivery", "Retry", "Bounce"))}
    stages = Functions(azurite.connection, sink.port, folder, settings={**settings, **allow})
    try:
        smtp_source(ingress.port, sessions, messages, 2048, 1)
        sink.wait(messages, idle=60)
        time.sleep(3)
        stages.stop()
        assert receiver.events == 0, "the backlog was posted before the Events function ran"
        # Delivery is at least once: a message the sink has twice has its events twice (the same ids).
        delivered = queue_ids(sink)
        hook = Functions(azurite.connection, sink.port, folder,
                         settings={**settings, "AzureFunctionsJobHost__functions__0": "Events"})
        ok = receiver.wait(2 * len(delivered))
        pids = [hook.proc.pid] + children_of(hook.proc.pid)
        cpu = sum(cpu_of(p) for p in pids)
        elapsed = receiver.last - receiver.first
    finally:
        stop_all()
        receiver.stop()
        forget(ingress, azurite, sink)
    rate = (receiver.events - 1) / elapsed if elapsed > 0 else float("nan")
    print(f"  {sum(delivered.values())} deliveries of {len(delivered)} messages in the backlog; "
          f"{receiver.events} events ({len(receiver.ids)} distinct, {receiver.bad} bad signatures) in {elapsed:.2f} s: "
          f"{rate:.0f} events/s for one replica; CPU host + worker {cpu:.2f} s (start-up included), "
          f"{1000 * cpu / max(1, receiver.events):.2f} s per 1,000 events{'' if ok else ' !!! incomplete'}", flush=True)
    return dict(events=receiver.events, distinct=len(receiver.ids), bad_signatures=receiver.bad, seconds=elapsed,
                events_per_second=rate, cpu_seconds=cpu, ok=ok)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--no-storage", action="store_true", help="only the webhook throughput")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    ensure_builds()
    work = tempfile.mkdtemp(prefix="mta-events-bench-")
    os.chmod(work, 0o755)
    try:
        off = on = None
        if not args.no_storage:
            print(f"== storage requests per delivered message, 2 KiB x 1 rcpt, {args.sessions} sessions", flush=True)
            off = storage(work, False, args.messages, args.sessions, 200)
            on = storage(work, True, args.messages, args.sessions, 200)
            print(f"  events add {on['per_message'] - off['per_message']:+.2f} requests per message besides receives "
                  f"(goal: <= 0.3), receives {on['receives'] - off['receives']:+.2f}", flush=True)
        print(f"== webhook throughput: a backlog of {args.backlog} messages' events, one Events replica", flush=True)
        hook = throughput(work, args.backlog, args.sessions)
    finally:
        stop_all()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(off=off, on=on, throughput=hook), f, indent=2)


if __name__ == "__main__":
    main()

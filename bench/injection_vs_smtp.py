#!/usr/bin/env python3
"""Injection benchmark: the same messages into the ingress over HTTP (POST /api/inject/v1, 1,000 recipients a request)
and over SMTP (Postfix's smtp-source), and into Postfix's smtpd, same machine, same run.

Every message is 2 KiB, one recipient, and queued durably, nothing delivered: the ingress answers after its queue
writes to Azurite (cleanup in the ingress, the production default); Postfix holds every message (fsynced queue file
before the 250). Reports messages per second, the ingress's CPU per 1,000 messages, Azurite's CPU apart (it stands in
for Azure Storage), and the storage requests per message the HTTP side cost beyond SMTP's (the key's ledger).

HTTP messages are distinct (each recipient's number substituted into the subject and body), so nothing is shared:
the comparison is message for message. Run from the repository root after `make test` or `npm ci`:

    python3 bench/injection_vs_smtp.py [--messages 20000] [--clients 2] [--key]

Needs: dotnet, node_modules (Azurite), Debian's postfix (smtp-source), root for Postfix.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingress_vs_postfix import Azurite, Ingress, Postfix, smtp_source, stop  # noqa: E402
from processes import cpu_of, free_port  # noqa: E402

TOKEN = "bench-token-7c1d"
SIZE = 2048


def body(recipients, offset):
    """A request of `recipients` distinct 2 KiB messages (raw content, the number substituted)."""
    filler = "".join(f"line {i:03d} of the same text for every reader of this bench message\r\n" for i in range(26))
    content = f"From: news@example.org\r\nTo: reader@localhost\r\nSubject: Number {{{{ n }}}}\r\n\r\nYour number is {{{{ n }}}}.\r\n{filler}"
    return json.dumps({
        "envelope_sender": "bounces@example.org",
        "recipients": [{"email": f"user{offset + i}@localhost", "substitutions": {"n": offset + i}} for i in range(recipients)],
        "content": content,
    }).encode()


def inject(port, requests, per_request, clients, key):
    """Sends `requests` requests from `clients` threads; returns (seconds, messages queued)."""
    bodies = [body(per_request, r * per_request) for r in range(requests)]
    queued = [0]
    lock = threading.Lock()
    errors = []

    def client(n):
        for r in range(n, requests, clients):
            headers = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
            if key:
                headers["Idempotency-Key"] = f"bench-{r}-{time.time()}"
            try:
                with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/inject/v1", data=bodies[r], headers=headers), timeout=300) as response:
                    ids = json.load(response)["queue_ids"]
                with lock:
                    queued[0] += len(ids)
            except Exception as e:  # noqa: BLE001  (reported, not hidden)
                errors.append(str(e))

    started = time.time()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("injection failed: " + errors[0])
    return time.time() - started, queued[0]


def ours(work, messages, clients, key):
    folder = tempfile.mkdtemp(prefix="bench-inject-", dir=work)
    azurite = Azurite(os.path.join(folder, "azurite"))
    tokens = os.path.join(folder, "tokens")
    with open(tokens, "w") as f:
        f.write(f"bench sha256:{hashlib.sha256(TOKEN.encode()).hexdigest()} example.org\n")
    api = free_port()
    ingress = Ingress(azurite.connection, settings={
        "Ingress__InjectionPort": str(api), "Ingress__InjectionTokensFile": tokens, "Ingress__InjectionPlainHttp": "true",
        "Ingress__InjectionRequestSizeLimit": str(64 * 1024 * 1024)})
    results = {}
    # Warm both paths first (JIT): the steady state is what a long-running pod costs.
    smtp_source(ingress.port, 20, 2000, SIZE)
    inject(api, 2, 1000, clients, key)
    for name, run in (("smtp", lambda: (smtp_source(ingress.port, 20, messages, SIZE), messages)),
                      ("http", lambda: inject(api, messages // 1000, 1000, clients, key))):
        cpu0, az0 = cpu_of(ingress.proc.pid), cpu_of(azurite.proc.pid)
        shared0 = ingress.metric("mta_ingress_shared_state_requests_total")
        elapsed, count = run()
        results[name] = dict(rate=count / elapsed, count=count, cpu=cpu_of(ingress.proc.pid) - cpu0, azurite=cpu_of(azurite.proc.pid) - az0,
                             shared=ingress.metric("mta_ingress_shared_state_requests_total") - shared0)
    stop(ingress.proc)
    stop(azurite.proc)
    return results


def postfix(work, messages):
    folder = tempfile.mkdtemp(prefix="bench-postfix-", dir=work)
    os.chmod(folder, 0o755)
    pf = Postfix(folder)
    smtp_source(pf.port, 20, 2000, SIZE)
    subprocess.run(["postsuper", "-c", pf.config, "-d", "ALL", "hold"], capture_output=True, check=True)
    cpu0 = pf.cpu()
    elapsed = smtp_source(pf.port, 20, messages, SIZE)
    hold = os.path.join(folder, "queue", "hold")
    held = sum(len(files) for _, _, files in os.walk(hold))
    cpu = pf.cpu() - cpu0
    pf.stop()
    return dict(rate=held / elapsed, count=held, cpu=cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=4, help="HTTP requests in flight at once")
    parser.add_argument("--key", action="store_true", help="send every request with an Idempotency-Key")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Postfix's master needs it")
    subprocess.run(["dotnet", "build", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ingress"), "-c", "Release", "-v", "q", "-nologo"],
                   check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="mta-bench-")
    os.chmod(work, 0o755)  # Postfix's daemons run as the postfix user
    print(f"== {args.messages} messages of {SIZE} octets, one recipient each; HTTP: 1,000 per request, {args.clients} in flight"
          f"{', with Idempotency-Key' if args.key else ''}; SMTP: smtp-source -s 20", flush=True)
    try:
        o = ours(work, args.messages, args.clients, args.key)
        p = postfix(work, args.messages)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, label in (("http", "ingress, HTTP injection"), ("smtp", "ingress, SMTP (smtp-source)")):
        r = o[name]
        print(f"  {label:30} {r['rate']:8.0f} msg/s ({r['count']}), ingress CPU {1000 * r['cpu'] / r['count']:.2f} s/1000 msg, "
              f"Azurite CPU {1000 * r['azurite'] / r['count']:.2f} s/1000 msg, shared-state requests {r['shared'] / r['count']:.4f}/msg")
    print(f"  {'postfix smtpd (smtp-source)':30} {p['rate']:8.0f} msg/s ({p['count']}), smtpd+cleanup+helpers CPU {1000 * p['cpu'] / max(1, p['count']):.2f} s/1000 msg")
    print(f"  ratio    HTTP {o['http']['rate'] / o['smtp']['rate']:.2f}x the ingress's SMTP rate, {o['http']['rate'] / p['rate']:.2f}x Postfix's; "
          f"ingress CPU per message {(o['http']['cpu'] / o['http']['count']) / (o['smtp']['cpu'] / o['smtp']['count']):.2f}x SMTP's")


if __name__ == "__main__":
    main()

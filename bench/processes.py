"""What the benchmark scripts share: free loopback ports, waiting for a listener, a process's CPU and RSS from /proc."""
import os
import socket
import time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, proc, timeout=60):
    """Waits until something listens on 127.0.0.1:port; fails early if proc (when given) has exited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing on port {port}")


def cpu_of(pid):
    """User+sys seconds of a process, plus those of its children it has reaped; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK


def rss_of(pid):
    """Resident set size in MiB; 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def jit_cpu_of(pid):
    """CPU seconds per thread of .NET's tiered-compilation worker (thread name ".NET Tiered Com…"), by thread id:
    the background recompilation of hot methods. While it runs a process is not in its steady state."""
    out = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                name, rest = f.read().split("(", 1)[1].rsplit(")", 1)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if name.startswith(".NET Tiered Com"):
            fields = rest.split()
            out[tid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def jit_cpu_between(before, after):
    """The tiered-compilation CPU spent between two jit_cpu_of readings (a worker that started in between counts
    whole; one that exited in between is lost, which only happens once it has been idle for seconds)."""
    return sum(cpu - before.get(tid, 0.0) for tid, cpu in after.items())

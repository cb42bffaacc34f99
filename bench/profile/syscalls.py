#!/usr/bin/env python3
"""System calls per fork, by process: the server, each child, the caller.

    python3 bench/profile/syscalls.py [N]          # libforks_fork from C, N forks (default 200)
    python3 bench/profile/syscalls.py N -- CMD...  # any command whose {N} is replaced by N

Runs the command twice under `strace -f` (with N and with 0 forks), so what
start-up and shutdown cost cancels out, and prints per fork: the server's
system calls by name, the mean per child, and the caller's. The server is
the process that waits in epoll. Not run by the suite
(strace slows everything down; the counts, not the times, are the result).
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z_0-9]+)\(")


def trace(command):
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        subprocess.run(["strace", "-f", "-qq", "-o", out.name, *command], check=True, stdout=subprocess.DEVNULL)
        calls = collections.defaultdict(collections.Counter)
        children = collections.defaultdict(list)
        for line in open(out.name, errors="replace"):
            m = LINE.match(line)
            if not m or "resumed>" in line:
                continue
            pid, name = int(m.group(1)), m.group(2)
            calls[pid][name] += 1
            if name in ("clone", "clone3", "fork", "vfork"):
                r = re.search(r"= (\d+)\s*$", line)
                if r:
                    children[pid].append(int(r.group(1)))
        # A clone that was still unfinished when the child started has its
        # result on the resumed line.
        for line in open(out.name, errors="replace"):
            if "resumed>" in line and ("clone" in line or "fork" in line):
                m = re.match(r"^(\d+)\s+<\.\.\. (?:clone3?|v?fork) resumed>.*= (\d+)\s*$", line)
                if m:
                    children[int(m.group(1))].append(int(m.group(2)))
        return calls, children


def split(calls, children, caller):
    # The server is the one process with a poll loop.
    server = max(calls, key=lambda p: calls[p]["epoll_pwait"] + calls[p]["epoll_wait"] + calls[p]["poll"])
    kids = children[server]
    per_child = collections.Counter()
    for kid in kids:
        per_child.update(calls.get(kid, {}))
    return calls[server], per_child, len(kids), calls[caller]


def main():
    args = sys.argv[1:]
    n = int(args[0]) if args and args[0].isdigit() else 200
    if "--" in args:
        template = args[args.index("--") + 1 :]
    else:
        template = [os.path.join(ROOT, "zig-out/bench/libforks_fork"), "--warmup", "0", "--iterations", "{N}"]
    runs = []
    for count in (n, 0):
        command = [part.replace("{N}", str(count)) for part in template]
        calls, children = trace(command)
        caller = min(calls)
        runs.append(split(calls, children, caller))
    (server, kids, forks, caller), (server0, kids0, forks0, caller0) = runs
    forks -= forks0
    if forks <= 0:
        sys.exit("syscalls.py: no forks seen")
    srv = server.copy()
    srv.subtract(server0)
    kid = kids.copy()
    kid.subtract(kids0)
    own = caller.copy()
    own.subtract(caller0)

    def show(title, counter, per):
        total = sum(counter.values()) / per
        print(f"{title}: {total:.1f} per fork")
        for name, count in sorted(counter.items(), key=lambda kv: -kv[1]):
            if abs(count / per) >= 0.05:
                print(f"  {count / per:6.2f}  {name}")

    print(f"{forks} forks")
    show("server", srv, forks)
    show("each child", kid, forks)
    show("caller", own, forks)


main()

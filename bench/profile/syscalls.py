#!/usr/bin/env python3
"""System calls per fork, by process: the server, each child, the caller.

    python3 bench/profile/syscalls.py [N]          # libforks_fork from C, N forks (default 200)
    python3 bench/profile/syscalls.py N -- CMD...  # any command whose {N} is replaced by N

Runs the command twice under `strace -f` (with N and with 0 forks), so what
start-up and shutdown cost cancels out, and prints per fork: the server's
system calls by name, the mean per child, and the caller's. The server is
the process two forks below the caller (caller, middle process, server); the caller's count covers all its threads. Not run by the suite
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
    """Per pid (thread id) its system calls; the process tree of non-thread
    clones; which thread ids belong to which process."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        subprocess.run(["strace", "-f", "-qq", "-o", out.name, *command], check=True, stdout=subprocess.DEVNULL)
        calls = collections.defaultdict(collections.Counter)
        parent = {}
        owner = {}  # thread id -> the process (thread group) it belongs to
        pending = {}  # pid -> flags of its unfinished clone
        first = None
        for line in open(out.name, errors="replace"):
            m = re.match(r"^(\d+)\s+(.*)$", line)
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            if first is None:
                first = pid
            owner.setdefault(pid, pid)
            name = LINE.match(line)
            if name and "resumed>" not in line:
                calls[pid][name.group(2)] += 1
            is_clone = re.match(r"(?:<\.\.\. )?(clone3?|v?fork)\b", rest)
            if not is_clone:
                continue
            if "resumed>" not in rest and "<unfinished" in rest:
                pending[pid] = rest
                continue
            flags = pending.pop(pid, "") + rest
            r = re.search(r"= (\d+)\s*$", rest)
            if not r:
                continue
            child = int(r.group(1))
            if "CLONE_THREAD" in flags:
                owner[child] = owner[pid]
            else:
                parent[child] = owner[pid]
                owner[child] = child
        return calls, parent, owner, first


def split(calls, parent, owner, root):
    """The server is the process two forks below the caller (caller ->
    middle process -> server); its children are the processes it forked."""
    def depth(p):
        d = 0
        while p in parent:
            p = parent[p]
            d += 1
        return d if p == root else -1

    def process_calls(p):
        total = collections.Counter()
        for tid, proc in owner.items():
            if proc == p:
                total.update(calls.get(tid, {}))
        return total

    candidates = [p for p in set(owner.values()) if depth(p) == 2]
    server = max(candidates, key=lambda p: sum(process_calls(p).values()))
    kids = [p for p, up in parent.items() if up == server]
    per_child = collections.Counter()
    for kid in kids:
        per_child.update(process_calls(kid))
    return process_calls(server), per_child, len(kids), process_calls(root)


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
        calls, parent, owner, root = trace(command)
        runs.append(split(calls, parent, owner, root))
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

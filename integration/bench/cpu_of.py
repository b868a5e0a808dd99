#!/usr/bin/env python3
"""Runs one command and writes "WALL CHILD_CPU SMBD_CPU" to REPORT: its wall seconds, the user +
system CPU seconds of the command and its children, and the CPU seconds every smbd process on the
machine spent meanwhile (the harness's Samba serves only the benchmark while it runs). Timing
starts after Python has started, so the peer's time does not carry this script's start-up.

Usage: cpu_of.py REPORT -- COMMAND [ARG...]   (the command's output and exit status pass through)
"""
import os
import resource
import subprocess
import sys
import time


def smbd_ticks():
    """utime + stime + cutime + cstime of every process whose name holds "smbd": a connection's
    smbd child that has exited and been reaped lives on in its parent's cutime."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, _, rest = stat.partition("(")[2].rpartition(")")
        if "smbd" not in name:
            continue
        fields = rest.split()
        total += sum(int(v) for v in fields[11:15])
    return total


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: cpu_of.py REPORT -- COMMAND [ARG...]")
    report, command = sys.argv[1], sys.argv[3:]
    hz = os.sysconf("SC_CLK_TCK")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    smbd_before = smbd_ticks()
    started = time.monotonic()
    status = subprocess.call(command)
    wall = time.monotonic() - started
    # The connection's smbd may still be closing the file after the client has gone.
    time.sleep(0.3)
    smbd = (smbd_ticks() - smbd_before) / hz
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(report, "w") as f:
        f.write(f"{wall:.4f} {child:.3f} {smbd:.3f}\n")
    sys.exit(status)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""pywinrm's side of integration/bench/winrm.sh: commands per second against winrm_peer.

Usage: bench_pywinrm.py URL USER COUNT MODE  (password from WINRM_BENCH_PASSWORD)
MODE run_cmd:   Session.run_cmd per command (a new shell per command, pywinrm's documented API)
MODE protocol:  Protocol API with one shell reused for all commands (pywinrm at its best)
"""
import os
import sys
import time

import winrm

url, user, count, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
password = os.environ["WINRM_BENCH_PASSWORD"]
s = winrm.Session(url, auth=(user, password), transport="ntlm", message_encryption="always")
t0 = time.monotonic()
if mode == "run_cmd":
    for _ in range(count):
        r = s.run_cmd("echo", ["hi"])
        assert r.status_code == 0 and r.std_out == b"hi\n", r
else:
    p = s.protocol
    shell = p.open_shell()
    for _ in range(count):
        cid = p.run_command(shell, "echo", ["hi"])
        out, err, rc = p.get_command_output(shell, cid)
        p.cleanup_command(shell, cid)
        assert rc == 0 and out == b"hi\n"
    p.close_shell(shell)
print("%.2f" % (count / (time.monotonic() - t0)))

"""Time one full pywinrm exchange (NTLM handshake, sealed Create/Command/Receive/Signal/Delete)
against a WinRM endpoint, excluding interpreter start-up. Prints milliseconds and the output.

Usage: pywinrm_timing.py ENDPOINT USER PASSWORD
"""
import json
import sys
import time

import winrm


def main():
    endpoint, user, password = sys.argv[1:4]
    started = time.perf_counter()
    protocol = winrm.Protocol(endpoint, transport="ntlm", username=user, password=password,
                              message_encryption="always", proxy=None)
    shell = protocol.open_shell()
    command = protocol.run_command(shell, "cmd.exe", ["/c", "echo", "timed"])
    stdout, _, rc = protocol.get_command_output(shell, command)
    protocol.cleanup_command(shell, command)
    protocol.close_shell(shell)
    elapsed = (time.perf_counter() - started) * 1000.0
    print(json.dumps({"ms": elapsed, "stdout": stdout.decode(), "rc": rc}))
    if stdout != b"timed\r\n" or rc != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()

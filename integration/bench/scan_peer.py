"""The peer of hive's scan benchmark: unmodified pywinrm running the same probe script on every host
with a thread pool of the same size, each host with its own connection, NTLM handshake and shell.
Prints one JSON line: seconds, ok."""
import base64, json, os, sys, time
from concurrent.futures import ThreadPoolExecutor

import winrm

urls = [u for u in open(sys.argv[1]).read().split() if u]
script = open(sys.argv[2], encoding="utf-8").read()
workers = int(sys.argv[3])
password = os.environ["BENCH_PASSWORD"]
encoded = base64.b64encode(script.encode("utf-16-le")).decode()


# BENCH_KERBEROS_SPN (HTTP/name): Kerberos with the ticket in KRB5CCNAME, asked for that SPN.
spn = os.environ.get("BENCH_KERBEROS_SPN", "")


def protocol(url):
    if spn:
        return winrm.Protocol(endpoint=url, transport="kerberos", username=None, password=None,
                              kerberos_hostname_override=spn.split("/", 1)[1],
                              message_encryption="always")
    return winrm.Protocol(endpoint=url, transport="ntlm", username="Administrator",
                          password=password, message_encryption="always")


def probe(url):
    p = protocol(url)
    shell = p.open_shell()
    try:
        # The encoded script is longer than cmd.exe allows: run powershell.exe without cmd.exe.
        cid = p.run_command(shell, "powershell.exe",
                            ["-NoProfile", "-NonInteractive", "-EncodedCommand", encoded],
                            skip_cmd_shell=True)
        out, err, rc = p.get_command_output(shell, cid)
        p.cleanup_command(shell, cid)
        return rc == 0 and out.strip().startswith(b"{")
    finally:
        p.close_shell(shell)


start = time.monotonic()
with ThreadPoolExecutor(max_workers=workers) as pool:
    results = list(pool.map(probe, urls))
print(json.dumps({"seconds": time.monotonic() - start, "ok": sum(results)}))

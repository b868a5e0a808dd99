"""Run WinRS commands against a simulated host with the unmodified pypsrp client (WinRS over NTLM
with message encryption, or Basic over HTTPS).

Usage: pypsrp_driver.py '<json spec>'; prints one JSON object on stdout.
Spec: {"host", "port", "ssl" (bool), "auth" ("ntlm" | "basic"), "user", "password",
       "operation_timeout"?, "steps": [{"command", "args", "stdin"?}]}
"""
import base64
import json
import sys

from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import WSMan


def describe(exc):
    out = {"type": type(exc).__name__, "message": str(exc)}
    for attr in ("code", "reason"):
        if hasattr(exc, attr):
            out[attr] = getattr(exc, attr)
    return out


def main():
    spec = json.loads(sys.argv[1])
    ssl = bool(spec.get("ssl", False))
    wsman = WSMan(
        spec["host"],
        port=spec["port"],
        username=spec["user"],
        password=spec["password"],
        ssl=ssl,
        auth=spec.get("auth", "ntlm"),
        encryption="auto" if ssl else "always",
        cert_validation=False,
        operation_timeout=spec.get("operation_timeout", 20),
        read_timeout=spec.get("operation_timeout", 20) + 10,
        proxy=None,
        no_proxy=True,
    )
    results = []
    error = None
    try:
        with wsman, WinRS(wsman) as shell:
            for step in spec["steps"]:
                process = Process(shell, step["command"], step.get("args", []))
                stdin = step.get("stdin")
                if stdin is None:
                    process.invoke()
                else:
                    process.begin_invoke()
                    process.send(stdin.encode("utf-8"), end=True)
                    process.end_invoke()
                process.signal(SignalCode.CTRL_C)
                results.append({
                    "stdout": base64.b64encode(process.stdout).decode(),
                    "stderr": base64.b64encode(process.stderr).decode(),
                    "rc": process.rc,
                })
    except Exception as exc:  # report every failure to the Rust test
        error = describe(exc)
    print(json.dumps({"results": results, "error": error}))


if __name__ == "__main__":
    main()

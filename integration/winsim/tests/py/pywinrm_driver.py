"""Run WinRS commands against a simulated host with the unmodified pywinrm client.

Usage: pywinrm_driver.py '<json spec>'; prints one JSON object on stdout.
Spec: {"endpoint", "user", "password", "transport" ("ntlm" | "ssl" | "kerberos" | "certificate"),
       "cert_pem"? and "cert_key_pem"? (certificate: the client certificate and key files),
       "operation_timeout"?, "read_timeout"?, "channel_binding"? ("none" | "wrong": over HTTPS,
       send no channel binding, or one for another certificate, instead of the real one),
       "ccache"? and "hostname_override"? (kerberos: the ticket cache `kinit` filled, and the host
       part of the HTTP/ SPN),
       "steps": [{"command", "args", "stdin"?}]}
Each step runs in the same shell (one authenticated connection), like a real patch run.
Errors are reported, not raised, so the Rust test can assert on the exact failure.
"""
import base64
import json
import os
import sys

import winrm
from winrm.exceptions import WinRMError, WinRMTransportError, WSManFaultError


def describe(exc):
    out = {"type": type(exc).__name__, "message": str(exc)}
    for attr in ("code", "wsman_fault_code", "fault_subcode", "reason"):
        if hasattr(exc, attr):
            out[attr] = getattr(exc, attr)
    return out


def main():
    spec = json.loads(sys.argv[1])
    binding = spec.get("channel_binding")
    if binding is not None:
        # requests_ntlm and requests_kerberos hash the server certificate into the binding
        # pywinrm sends.
        import requests_ntlm.requests_ntlm as rn
        import winrm.vendor.requests_kerberos.kerberos_ as rk
        if binding == "none":
            rn._get_certificate_hash = lambda der: None
            rk._get_channel_bindings_application_data = lambda response: None
        elif binding == "wrong":
            rn._get_certificate_hash = lambda der: bytes(32) + b"another certificate"
            rk._get_channel_bindings_application_data = (
                lambda response: b"tls-server-end-point:" + bytes(32)
            )
        else:
            raise SystemExit("channel_binding must be none or wrong")
    if spec.get("ccache"):
        os.environ["KRB5CCNAME"] = spec["ccache"]
    kwargs = dict(
        transport=spec.get("transport", "ntlm"),
        username=spec.get("user"),
        password=spec.get("password"),
        server_cert_validation="ignore",
        proxy=None,
        operation_timeout_sec=spec.get("operation_timeout", 20),
        read_timeout_sec=spec.get("read_timeout", 30),
    )
    if kwargs["transport"] in ("ntlm", "kerberos") and spec["endpoint"].startswith("http:"):
        kwargs["message_encryption"] = "always"
    if kwargs["transport"] == "certificate":
        kwargs["cert_pem"] = spec["cert_pem"]
        kwargs["cert_key_pem"] = spec["cert_key_pem"]
    if kwargs["transport"] == "kerberos":
        kwargs["kerberos_hostname_override"] = spec.get("hostname_override")
    protocol = winrm.Protocol(spec["endpoint"], **kwargs)
    results = []
    error = None
    try:
        shell_id = protocol.open_shell()
        for step in spec["steps"]:
            stdin = step.get("stdin")
            command_id = protocol.run_command(shell_id, step["command"], step.get("args", []))
            if stdin is not None:
                protocol.send_command_input(shell_id, command_id, stdin.encode("utf-8"), end=True)
            stdout, stderr, rc = protocol.get_command_output(shell_id, command_id)
            protocol.cleanup_command(shell_id, command_id)
            results.append({
                "stdout": base64.b64encode(stdout).decode(),
                "stderr": base64.b64encode(stderr).decode(),
                "rc": rc,
            })
        protocol.close_shell(shell_id)
    except (WinRMError, WinRMTransportError, WSManFaultError, Exception) as exc:  # noqa: B014
        error = describe(exc)
    print(json.dumps({"results": results, "error": error}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Drive winrm_peer with the real, unmodified pywinrm and pypsrp clients (NTLM, message encryption).

Usage: check_clients.py PORT USER PASSWORD   -> prints one JSON object with what each client saw.
"""
import json
import sys

import winrm
from pypsrp.client import Client

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
url = "http://127.0.0.1:%d/wsman" % port
result = {}

s = winrm.Session(url, auth=(user, password), transport="ntlm", message_encryption="always")
r = s.run_cmd("printf", ["'%s|'", "pywinrm", ";", "echo", "to-stderr", ">&2", ";", "exit", "5"])
result["pywinrm"] = [r.status_code, r.std_out.decode(), r.std_err.decode()]

try:
    winrm.Session(url, auth=(user, password + "x"), transport="ntlm",
                  message_encryption="always").run_cmd("true")
    result["pywinrm_wrong_password"] = "accepted"
except winrm.exceptions.InvalidCredentialsError as e:
    result["pywinrm_wrong_password"] = "InvalidCredentialsError"

c = Client("127.0.0.1", port=port, username=user, password=password, ssl=False, auth="ntlm",
           encryption="always")
out, err, rc = c.execute_cmd("echo pypsrp; echo e2 >&2; exit 6")
result["pypsrp"] = [rc, out, err]

print(json.dumps(result))

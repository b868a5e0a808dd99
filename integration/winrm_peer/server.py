#!/usr/bin/env python3
"""A small, real WinRM (WS-Management + WinRS) server for tests, independent of hive's code.

NTLM is pyspnego's acceptor (credentials from NTLM_USER_FILE, lines DOMAIN:USER:PASSWORD); message
encryption is the MS-WSMV multipart/encrypted framing, written here from the spec. Commands run for
real: this is a Linux box, so the command line is handed to /bin/sh. It is driven by hive's Rust
client AND by unmodified pywinrm and pypsrp, so it is not shaped to one client.

Usage: server.py --users FILE [--tls-cert PEM --tls-key PEM [--client-ca PEM]]
                 [--max-shells N] [--max-ops N] [--max-envelope-kb N]
Prints "PORT <n>" on stdout once it listens on 127.0.0.1.
"""

import argparse
import base64
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL_NS = NS["rsp"]
ANON = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
CERT_AUTH = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"
ENC_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
# A raw Kerberos token (pyspnego's acceptor, python-gssapi, keys from KRB5_KTNAME) seals under this.
KRB_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"

CODE_TIMED_OUT = 2150858793
CODE_INVALID_SELECTORS = 2150858843
CODE_SHELL_QUOTA = 2150859173
CODE_OPERATION_QUOTA = 2150859174
CODE_ENVELOPE = 2150858817

ARGS = None
USERS = {}  # (DOMAIN upper, user upper) -> password
SHELLS = {}
SHELLS_LOCK = threading.Lock()


def log(msg):
    if os.environ.get("WINRM_PEER_VERBOSE"):
        print("[winrm_peer] " + msg, file=sys.stderr, flush=True)


class Fault(Exception):
    def __init__(self, subcode, code, text, http=500):
        super().__init__(text)
        self.subcode, self.code, self.text, self.http = subcode, code, text, http


# ---- MS-WSMV encryption framing -------------------------------------------------------------------

def unwrap_body(ctx, body):
    m = re.search(rb"Length=(\d+)", body)
    if not m:
        raise ValueError("no OriginalContent Length")
    length = int(m.group(1))
    marker = b"\tContent-Type: application/octet-stream\r\n"
    start = body.index(marker, m.end()) + len(marker)
    end = body.rindex(BOUNDARY + b"--")
    payload = body[start:end]
    (hlen,) = struct.unpack("<I", payload[:4])
    header, data = payload[4:4 + hlen], payload[4 + hlen:]
    plain = ctx.unwrap_winrm(header, data)
    if len(plain) != length:
        raise ValueError("decrypted %d bytes, announced %d" % (len(plain), length))
    return plain


def wrap_body(ctx, plain, protocol=ENC_PROTOCOL):
    res = ctx.wrap_winrm(plain)
    return (
        BOUNDARY + b"\r\n\tContent-Type: " + protocol.encode() + b"\r\n"
        + b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(plain)).encode() + b"\r\n"
        + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
        + struct.pack("<I", len(res.header)) + res.header + res.data
        + BOUNDARY + b"--\r\n"
    )


# ---- WinRS model ------------------------------------------------------------------------------------

class Command:
    def __init__(self, line, env, cwd):
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", line], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
        self.cond = threading.Condition()
        self.buf = {"stdout": bytearray(), "stderr": bytearray()}
        self.eof = {"stdout": False, "stderr": False}
        for name, f in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, f), daemon=True).start()

    def _pump(self, name, f):
        fd = f.fileno()
        while True:
            chunk = os.read(fd, 65536)
            with self.cond:
                if not chunk:
                    self.eof[name] = True
                    self.cond.notify_all()
                    return
                self.buf[name] += chunk
                self.cond.notify_all()

    def finished(self):
        return all(self.eof.values()) and self.proc.poll() is not None

    def receive(self, timeout, limit):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.buf["stdout"] or self.buf["stderr"] or all(self.eof.values())):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            # Like Windows, which buffers a moment: a command that is about to end returns its
            # output and its exit code in one reply.
            settle = time.monotonic() + 0.05
            while not all(self.eof.values()) and time.monotonic() < settle:
                self.cond.wait(settle - time.monotonic())
            out = {}
            for name in ("stdout", "stderr"):
                out[name] = bytes(self.buf[name][:limit])
                del self.buf[name][:limit]
            drained = not self.buf["stdout"] and not self.buf["stderr"]
        done = False
        if drained and all(self.eof.values()):
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()) + 5)
                done = True
            except subprocess.TimeoutExpired:
                pass
        return out, done

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Shell:
    def __init__(self, owner, env, cwd):
        self.id = str(uuid.uuid4()).upper()
        self.owner, self.env, self.cwd = owner, env, cwd
        self.commands = {}
        self.ops = 0


def selector(header, name):
    for s in header.iterfind("wsman:SelectorSet/wsman:Selector", NS):
        if s.get("Name") == name:
            return s.text
    return None


def get_shell(header, user):
    sid = selector(header, "ShellId")
    with SHELLS_LOCK:
        shell = SHELLS.get(sid)
    if shell is None or shell.owner != user:
        raise Fault("w:InvalidSelectors", CODE_INVALID_SELECTORS,
                    "The request contained invalid selectors for the resource: no shell %s." % sid)
    return shell


def duration(text, default):
    m = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", (text or "").strip())
    return float(m.group(1)) if m else default


def create(header, body, user):
    with SHELLS_LOCK:
        if sum(1 for s in SHELLS.values() if s.owner == user) >= ARGS.max_shells:
            raise Fault("w:QuotaLimit", CODE_SHELL_QUOTA,
                        "The WS-Management service cannot process the request. This user is allowed a "
                        "maximum number of %d shells, which has been exceeded." % ARGS.max_shells)
    spec = body.find("rsp:Shell", NS)
    env = dict(os.environ)
    for var in spec.iterfind("rsp:Environment/rsp:Variable", NS):
        env[var.get("Name")] = var.text or ""
    wd = spec.findtext("rsp:WorkingDirectory", None, NS)
    shell = Shell(user, env, wd if wd and os.path.isdir(wd) else None)
    with SHELLS_LOCK:
        SHELLS[shell.id] = shell
    return (
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
        '<x:ResourceCreated xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">'
        "<wsa:Address>%s</wsa:Address><wsa:ReferenceParameters>"
        "<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>"
        '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet>'
        "</wsa:ReferenceParameters></x:ResourceCreated>"
        "<sh:Shell><sh:ShellId>%s</sh:ShellId><sh:Owner>%s</sh:Owner>"
        "<sh:InputStreams>stdin</sh:InputStreams><sh:OutputStreams>stdout stderr</sh:OutputStreams>"
        "</sh:Shell>" % (esc(header.findtext("wsa:To", "", NS)), shell.id, shell.id, esc(user)),
    )


def count_op(shell):
    shell.ops += 1
    if ARGS.max_ops and shell.ops > ARGS.max_ops:
        raise Fault("w:QuotaLimit", CODE_OPERATION_QUOTA,
                    "The WS-Management service cannot process the request. This shell is allowed a "
                    "maximum number of %d concurrent operations, which has been exceeded." % ARGS.max_ops)


def command(header, body, user):
    shell = get_shell(header, user)
    count_op(shell)
    cl = body.find("rsp:CommandLine", NS)
    parts = [cl.findtext("rsp:Command", "", NS)] + [a.text or "" for a in cl.iterfind("rsp:Arguments", NS)]
    env = dict(shell.env, WINRM_PEER_USER=user)  # lets tests see who the server thinks we are
    cmd = Command(" ".join(parts), env, shell.cwd)
    cid = str(uuid.uuid4()).upper()
    shell.commands[cid] = cmd
    return (SHELL_NS + "/CommandResponse",
            "<sh:CommandResponse><sh:CommandId>%s</sh:CommandId></sh:CommandResponse>" % cid)


def get_command(shell, cid):
    cmd = shell.commands.get(cid)
    if cmd is None:
        raise Fault("w:InvalidSelectors", CODE_INVALID_SELECTORS,
                    "The Windows Remote Shell received a request to perform an operation on a command "
                    "identifier that does not exist.")
    return cmd


def send(header, body, user):
    shell = get_shell(header, user)
    for s in body.iterfind("rsp:Send/rsp:Stream", NS):
        cmd = get_command(shell, s.get("CommandId"))
        data = base64.b64decode(s.text or "")
        try:
            if data:
                cmd.proc.stdin.write(data)
                cmd.proc.stdin.flush()
            if (s.get("End") or "").lower() == "true":
                cmd.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
    return SHELL_NS + "/SendResponse", "<sh:SendResponse/>"


def receive(header, body, user, timeout):
    shell = get_shell(header, user)
    ds = body.find("rsp:Receive/rsp:DesiredStream", NS)
    cid = ds.get("CommandId")
    cmd = get_command(shell, cid)
    got = cmd.receive(min(timeout, 60.0), limit=ARGS.max_envelope_kb * 1024 // 3)
    if got is None:
        raise Fault("w:TimedOut", CODE_TIMED_OUT,
                    "The WS-Management service cannot complete the operation within the time specified "
                    "in OperationTimeout.")
    out, done = got
    parts = []
    for name in ("stdout", "stderr"):
        if out[name]:
            parts.append('<sh:Stream Name="%s" CommandId="%s">%s</sh:Stream>'
                         % (name, cid, base64.b64encode(out[name]).decode()))
    if done:
        for name in ("stdout", "stderr"):
            parts.append('<sh:Stream Name="%s" CommandId="%s" End="true"></sh:Stream>' % (name, cid))
        parts.append('<sh:CommandState CommandId="%s" State="%s/CommandState/Done">'
                     "<sh:ExitCode>%d</sh:ExitCode></sh:CommandState>"
                     % (cid, SHELL_NS, cmd.proc.returncode % (1 << 32)))
    else:
        parts.append('<sh:CommandState CommandId="%s" State="%s/CommandState/Running"></sh:CommandState>'
                     % (cid, SHELL_NS))
    return SHELL_NS + "/ReceiveResponse", "<sh:ReceiveResponse>%s</sh:ReceiveResponse>" % "".join(parts)


def signal_op(header, body, user):
    shell = get_shell(header, user)
    sig = body.find("rsp:Signal", NS)
    cmd = get_command(shell, sig.get("CommandId"))
    code = sig.findtext("rsp:Code", "", NS)
    if code.endswith("/ctrl_c"):
        cmd.kill(signal.SIGINT)
    else:
        cmd.kill()
        shell.commands.pop(sig.get("CommandId"), None)
    return SHELL_NS + "/SignalResponse", "<sh:SignalResponse/>"


def delete(header, body, user):
    shell = get_shell(header, user)
    for cmd in shell.commands.values():
        cmd.kill()
    with SHELLS_LOCK:
        SHELLS.pop(shell.id, None)
    return "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", ""


def get_config(header, body, user):
    return (
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse",
        '<cfg:Config xmlns:cfg="http://schemas.microsoft.com/wbem/wsman/1/config">'
        "<cfg:MaxEnvelopeSizekb>%d</cfg:MaxEnvelopeSizekb><cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms>"
        "<cfg:Winrs><cfg:MaxShellsPerUser>%d</cfg:MaxShellsPerUser></cfg:Winrs></cfg:Config>"
        % (ARGS.max_envelope_kb, ARGS.max_shells),
    )


ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": create,
    SHELL_NS + "/Command": command,
    SHELL_NS + "/Send": send,
    SHELL_NS + "/Signal": signal_op,
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": delete,
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get": get_config,
}


def esc(s):
    return (s or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def envelope(action, relates_to, body):
    # Prefixes differ from Windows' on purpose: clients must resolve namespaces, not prefixes.
    return (
        '<env:Envelope xml:lang="en-US" xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
        'xmlns:sh="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
        "<env:Header><wsa:Action>%s</wsa:Action><wsa:MessageID>uuid:%s</wsa:MessageID>"
        "<wsa:To>%s</wsa:To><wsa:RelatesTo>%s</wsa:RelatesTo></env:Header>"
        "<env:Body>%s</env:Body></env:Envelope>"
        % (action, str(uuid.uuid4()).upper(), ANON, esc(relates_to), body)
    ).encode()


def fault_body(f):
    return (
        "<env:Fault><env:Code><env:Value>env:Receiver</env:Value><env:Subcode><env:Value>%s</env:Value>"
        "</env:Subcode></env:Code><env:Reason><env:Text xml:lang=\"en-US\">%s</env:Text></env:Reason>"
        '<env:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
        'Code="%d" Machine="127.0.0.1"><f:Message>%s</f:Message></f:WSManFault></env:Detail></env:Fault>'
        % (f.subcode, esc(f.text), f.code, esc(f.text))
    )


def handle_soap(soap, user):
    root = ET.fromstring(soap)
    header = root.find("s:Header", NS)
    body = root.find("s:Body", NS)
    action = header.findtext("wsa:Action", "", NS)
    mid = header.findtext("wsa:MessageID", "", NS)
    timeout = duration(header.findtext("wsman:OperationTimeout", "", NS), 20.0)
    try:
        if action == SHELL_NS + "/Receive":
            reply_action, reply = receive(header, body, user, timeout)
        elif action in ACTIONS:
            reply_action, reply = ACTIONS[action](header, body, user)
        else:
            raise Fault("wsa:ActionNotSupported", 2150858771, "Unsupported action %s" % action)
        return 200, envelope(reply_action, mid, reply)
    except Fault as f:
        return f.http, envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", mid, fault_body(f))


# ---- HTTP and authentication --------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ntlm = None
        self.user = None
        self.enc_protocol = ENC_PROTOCOL

    def log_message(self, fmt, *args):
        log(fmt % args)

    def reply(self, status, body=b"", headers=(), close=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def challenge_headers(self):
        h = [("WWW-Authenticate", "Negotiate")]
        if self.server.tls:
            h.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        return h

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Negotiate ") or auth.startswith("NTLM "):
            token = base64.b64decode(auth.split(" ", 1)[1])
            msg_type = struct.unpack("<I", token[8:12])[0] if len(token) >= 12 else 0
            if token[:1] == b"\x60" and not token.startswith(b"NTLMSSP"):
                # An AP-REQ: one token completes the context (no mutual authentication asked).
                try:
                    self.ntlm = spnego.server(protocol="kerberos")
                    self.ntlm.step(token)
                except Exception as e:
                    log("Kerberos authentication failed: %s" % e)
                    self.ntlm = None
                    self.reply(401, headers=self.challenge_headers(), close=True)
                    return
                if not self.ntlm.complete:
                    self.reply(401, headers=self.challenge_headers(), close=True)
                    return
                self.user = self.ntlm.client_principal
                self.enc_protocol = KRB_PROTOCOL
                log("Kerberos authenticated %s" % self.user)
            elif msg_type == 1:
                self.ntlm = spnego.server(protocol="ntlm")
                self.enc_protocol = ENC_PROTOCOL
                self.user = None
                out = self.ntlm.step(token)
                self.reply(401, headers=[("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())])
                return
            elif msg_type == 3 and self.ntlm is not None:
                try:
                    self.ntlm.step(token)
                except Exception as e:  # pyspnego raises on a bad password
                    log("NTLM authentication failed: %s" % e)
                    self.ntlm = None
                    self.reply(401, headers=self.challenge_headers(), close=True)
                    return
                self.user = self.ntlm.client_principal or "ntlm-user"
                log("NTLM authenticated %s" % self.user)
            else:
                self.reply(400, b"unexpected Negotiate token", close=True)
                return
        elif auth.startswith("Basic ") and self.server.tls:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            dom, _, u = user.rpartition("\\")
            if USERS.get((dom.upper(), u.upper())) != pw:
                self.reply(401, headers=self.challenge_headers(), close=True)
                return
            self.user = user
        elif auth == CERT_AUTH and self.server.tls:
            cert = self.connection.getpeercert()
            if not cert:
                self.reply(401, headers=self.challenge_headers(), close=True)
                return
            subject = dict(x[0] for x in cert["subject"])
            self.user = "cert:" + subject.get("commonName", "?")
        if self.user is None:
            self.reply(401, headers=self.challenge_headers())
            return
        if not body:
            self.reply(200)
            return

        ctype = self.headers.get("Content-Type", "")
        encrypted = ctype.startswith("multipart/encrypted")
        if encrypted:
            if self.ntlm is None:
                self.reply(400, b"encrypted body without a security context", close=True)
                return
            try:
                soap = unwrap_body(self.ntlm, body)
            except Exception as e:
                log("cannot decrypt: %s" % e)
                self.reply(400, b"cannot decrypt the body", close=True)
                return
        elif not self.server.tls:
            # Like Windows with AllowUnencrypted=false: plain SOAP over HTTP is refused.
            self.reply(401, headers=self.challenge_headers(), close=True)
            return
        else:
            soap = body
        if len(soap) > ARGS.max_envelope_kb * 1024:
            self.reply(413, close=True)
            return
        status, reply = handle_soap(soap, self.user)
        if encrypted:
            out = wrap_body(self.ntlm, reply, self.enc_protocol)
            self.reply(status, out, [("Content-Type", '%s;protocol="%s";boundary="Encrypted Boundary"'
                                      % ("multipart/encrypted", self.enc_protocol))])
        else:
            self.reply(status, reply, [("Content-Type", "application/soap+xml;charset=UTF-8")])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--users", required=True, help="DOMAIN:USER:PASSWORD lines (also used as NTLM_USER_FILE)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca", help="accept client certificates signed by this CA")
    p.add_argument("--max-shells", type=int, default=30)
    p.add_argument("--max-ops", type=int, default=0, help="operations per shell before a quota fault")
    p.add_argument("--max-envelope-kb", type=int, default=500)
    p.add_argument("--idle-close", type=float, default=0,
                   help="silently close a keep-alive connection idle this many seconds (like http.sys)")
    ARGS = p.parse_args()
    os.environ["NTLM_USER_FILE"] = os.path.abspath(ARGS.users)
    with open(ARGS.users) as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) == 3:
                USERS[(parts[0].upper(), parts[1].upper())] = parts[2]

    if ARGS.idle_close:
        Handler.timeout = ARGS.idle_close
    srv = Server(("127.0.0.1", ARGS.port), Handler)
    srv.tls = bool(ARGS.tls_cert)
    if srv.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        if ARGS.client_ca:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(ARGS.client_ca)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("PORT %d" % srv.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv.serve_forever()


if __name__ == "__main__":
    main()

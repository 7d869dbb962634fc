"""An HTTP/1.1 server that requires NTLM, with pyspnego as the acceptor.

Usage: python ntlm_server.py PORT RECORD_FILE
Users come from the file named by NTLM_USER_FILE (DOMAIN:USER:PASSWORD lines).
NTLM authenticates the connection: each connection keeps its own context,
and once it completes, later requests on it are accepted without a new
handshake, as IIS does; with NTLM_CLOSE_AFTER_ACCEPT=1 the connection is
closed after each accepted request instead, so every request needs a new
handshake on a new connection; with NTLM_CLOSE_AFTER_CHALLENGES=N the
connection is closed right after each of the first N CHALLENGEs, before
the AUTHENTICATE can come on it. Every accepted request is appended to
RECORD_FILE as one JSON line {"user": ..., "body": ..., "port": the client's
port}. An AUTHENTICATE that arrives on a connection that carried no
CHALLENGE (its legs split over two connections) is logged as
"authenticate without a handshake". With NTLM_TLS_CERT and NTLM_TLS_KEY
(PEM files) it serves HTTPS.
"""

import base64
import http.server
import json
import os
import ssl
import sys
import threading

import spnego


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    closing_challenges = int(os.environ.get("NTLM_CLOSE_AFTER_CHALLENGES", "0"))
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if getattr(self, "user", None):
            return self.accept(body)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("NTLM "):
            return self.challenge(None)
        token = base64.b64decode(auth[5:])
        if token[8:12] == b"\x01\x00\x00\x00":  # NEGOTIATE starts a handshake
            self.context = spnego.server(protocol="ntlm")
        context = getattr(self, "context", None)
        if context is None:
            sys.stderr.write("authenticate without a handshake\n")
            sys.stderr.flush()
            return self.challenge(None)
        try:
            answer = context.step(token)
        except Exception as error:  # wrong password, malformed message
            sys.stderr.write("ntlm refused: %s\n" % error)
            sys.stderr.flush()
            self.context = None
            return self.challenge(None)
        if not context.complete:
            return self.challenge(answer)
        self.user = context.client_principal
        self.accept(body)

    def challenge(self, token):
        self.send_response(401)
        value = "NTLM" if token is None else "NTLM " + base64.b64encode(token).decode()
        self.send_header("WWW-Authenticate", value)
        self.send_header("Content-Length", "12")
        if token is not None and self.close_after_challenge():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(b"unauthorized")

    def close_after_challenge(self):
        with Handler.lock:
            if Handler.closing_challenges <= 0:
                return False
            Handler.closing_challenges -= 1
            return True

    def accept(self, body):
        with open(sys.argv[2], "a") as record:
            accepted = {"user": self.user, "body": json.loads(body), "port": self.client_address[1]}
            record.write(json.dumps(accepted) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        if os.environ.get("NTLM_CLOSE_AFTER_ACCEPT") == "1":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def log_message(self, format, *args):
        sys.stderr.write("%s\n" % (format % args))
        sys.stderr.flush()


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
if os.environ.get("NTLM_TLS_CERT"):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(os.environ["NTLM_TLS_CERT"], os.environ["NTLM_TLS_KEY"])
    # The handshake runs in the handler's thread, not in the accept loop.
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
server.serve_forever()

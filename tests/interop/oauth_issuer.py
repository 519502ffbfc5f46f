"""A small OAuth 2.1 authorization server over HTTPS, for tests/oauth.rs.

    oauth_issuer.py DIR

Makes a CA and a certificate for 127.0.0.1 (DIR/ca.pem), an RSA and an EC signing key, and
serves on 127.0.0.1 (a free port) until stdin closes. Prints one JSON line: {"issuer", "ca",
"control"}: `control` is a plain-HTTP port with the same handler, for the test's /mint and /stats.

- GET /.well-known/oauth-authorization-server: RFC 8414 metadata
- GET /jwks: the public keys (RSA `rsa-1`, EC P-256 `ec-1`); GET /stats counts its fetches
- POST /token: the client_credentials grant (client_secret_basic or _post) for the clients
  below; the token is an RS256 JWT with `sub` = the client, `aud` = the `resource` parameter
  and every scope the client may have (those asked for must be among them)
- POST /mint: a token of any claims, header and algorithm (`none`, `HS256` with the RSA public
  key as the secret, `rogue` for a key not in the set), for the hostile tests
- POST /mint-opaque: an opaque token (random) whose introspection answers `{"active", **claims}`
- POST /introspect: RFC 7662, for the resource-server client below (client_secret_basic);
  GET /stats counts its requests too

Tokens are made with PyJWT and the keys with `cryptography`, as real issuers' libraries do.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

CLIENTS = {
    "agent-1": ("secret-1", {"mcpod"}),
    "agent-2": ("secret-2", {"mcpod"}),
    "ops": ("secret-ops", {"mcpod", "mcpod:admin"}),
    "no-scope": ("secret-ns", set()),
}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_tls(dir):
    """A CA and a server certificate for 127.0.0.1 signed by it; returns the paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcpod test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (dir / "ca.pem").write_bytes(ca.public_bytes(pem))
    (dir / "server.pem").write_bytes(cert.public_bytes(pem))
    (dir / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return dir / "ca.pem", dir / "server.pem", dir / "server.key"


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
ROGUE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
STATS = {"jwks_fetches": 0, "introspections": 0}
OPAQUE = {}
RESOURCE_SERVERS = {"mcpod-rs": "rs-secret"}


def jwks():
    keys = []
    for kid, key, alg in (("rsa-1", RSA, "RS256"), ("ec-1", EC, "ES256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": alg})
        keys.append(jwk)
    return {"keys": keys}


def sign(claims, alg="RS256", kid="rsa-1", header=None):
    header = dict(header or {})
    if alg == "none":
        head = {"alg": "none", "typ": "JWT", **header}
        return f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}."
    if alg == "HS256":
        secret = RSA.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        head = {"alg": "HS256", "typ": "JWT", "kid": kid, **header}
        signed = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
        tag = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{b64(tag)}"
    key = {"RS256": RSA, "ES256": EC, "rogue": ROGUE}[alg]
    real_alg = "RS256" if alg == "rogue" else alg
    return jwt.encode(claims, key, algorithm=real_alg, headers={"kid": kid, "typ": "at+jwt", **header})


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        issuer = self.server.issuer
        if self.path == "/.well-known/oauth-authorization-server":
            return self.reply(200, {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/jwks",
                "token_endpoint": f"{issuer}/token",
                "introspection_endpoint": f"{issuer}/introspect",
                # Required by RFC 8414 (and the SDK's model), though only client_credentials is served.
                "authorization_endpoint": f"{issuer}/authorize",
                "grant_types_supported": ["client_credentials"],
                "response_types_supported": ["code"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            })
        if self.path == "/jwks":
            STATS["jwks_fetches"] += 1
            return self.reply(200, jwks())
        if self.path == "/stats":
            return self.reply(200, STATS)
        return self.reply(404, {"error": "not_found"})

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length).decode()
        if self.path == "/mint":
            ask = json.loads(body)
            return self.reply(200, {"token": sign(ask["claims"], ask.get("alg", "RS256"), ask.get("kid", "rsa-1"), ask.get("header"))})
        if self.path == "/mint-opaque":
            ask = json.loads(body)
            token = b64(os.urandom(24))
            OPAQUE[token] = {"active": ask.get("active", True), **ask["claims"]}
            return self.reply(200, {"token": token})
        if self.path not in ("/token", "/introspect"):
            return self.reply(404, {"error": "not_found"})
        form = dict(urllib.parse.parse_qsl(body))
        client, secret = form.get("client_id"), form.get("client_secret")
        basic = self.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:]).decode()
            client, secret = (urllib.parse.unquote(p) for p in decoded.split(":", 1))
        if self.path == "/introspect":
            STATS["introspections"] += 1
            if RESOURCE_SERVERS.get(client) != secret:
                return self.reply(401, {"error": "invalid_client"})
            return self.reply(200, OPAQUE.get(form.get("token"), {"active": False}))
        if client not in CLIENTS or CLIENTS[client][0] != secret:
            return self.reply(401, {"error": "invalid_client"})
        if form.get("grant_type") != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type"})
        asked = set(form.get("scope", "").split())
        if not asked <= CLIENTS[client][1]:
            return self.reply(400, {"error": "invalid_scope"})
        now = int(time.time())
        # Every scope the client may have, as an issuer's default client scopes do: the SDK asks
        # for the scope mcpod's challenge names, and an admin's token still carries its admin scope.
        claims = {"iss": self.server.issuer, "sub": client, "client_id": client, "iat": now, "exp": now + 300,
                  "aud": form.get("resource", ""), "scope": " ".join(sorted(CLIENTS[client][1]))}
        return self.reply(200, {"access_token": sign(claims), "token_type": "Bearer", "expires_in": 300,
                                "scope": claims["scope"]})


def main(dir):
    dir = Path(dir)
    ca, cert, key = make_tls(dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.issuer = f"https://127.0.0.1:{server.server_address[1]}"
    control = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    control.issuer = server.issuer
    for s in (server, control):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(json.dumps({"issuer": server.issuer, "ca": str(ca), "control": control.server_address[1]}), flush=True)
    sys.stdin.read()
    server.shutdown()
    control.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])

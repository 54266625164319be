"""Key rotation with a JWK Set (PROTOCOL.md section 14): oct, RSA, EC P-256
and OKP Ed25519 keys picked by kid, the key type pinning the algorithm,
tokens without kid, unknown kids, re-reading the set on SIGHUP while
connections stay, and `tickgate token --kid`. Tokens are real JWTs signed
by PyJWT with keys made by cryptography."""
import base64
import json
import os
import signal
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from conftest import child_env, tickgate_bin, wait_until

OCT = b"jwks-oct-secret-0123456789abcdef0123456789"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def keys():
    return {
        "rs": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "es": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
        "ed2": ed25519.Ed25519PrivateKey.generate(),
    }


def jwk(kid, key):
    if key is None:
        d = {"kty": "oct", "k": b64(OCT)}
    elif isinstance(key, rsa.RSAPrivateKey):
        d = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        d = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    else:
        d = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    d["kid"] = kid
    return d


def write_set(path, *entries):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"keys": list(entries)}, f)
    os.replace(tmp, str(path))


def token(key, alg, kid=None, sub="u1", **claims):
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + 600, "role": "viewer"}
    payload.update(claims)
    headers = {"kid": kid} if kid is not None else None
    t = jwt.encode(payload, OCT if key is None else key, algorithm=alg, headers=headers)
    return t.decode() if isinstance(t, bytes) else t


ALL_ALGS = "--auth.jwt_algorithms=HS256,RS256,ES256,EdDSA"


def start(tickgate, path, *flags):
    return tickgate("--auth.jwks_file=%s" % path, ALL_ALGS, *flags, secret=False)


def status(jclients, gw, tok):
    return jclients.handshake(gw, token=tok).status


def test_kid_selects_each_key_type(tickgate, jclients, keys, tmp_path):
    p = tmp_path / "jwks.json"
    write_set(p, jwk("hs", None), jwk("rs", keys["rs"]), jwk("es", keys["es"]), jwk("ed", keys["ed"]))
    gw = start(tickgate, p)
    for kid, key, alg in (("hs", None, "HS256"), ("rs", keys["rs"], "RS256"), ("es", keys["es"], "ES256"),
                          ("ed", keys["ed"], "EdDSA")):
        ws = jclients.open(gw, token=token(key, alg, kid, sub="user-" + kid))
        assert ws.hello["user_id"] == "user-" + kid, ws.hello
        # A token without kid: the single key of the set for its alg.
        ws = jclients.open(gw, token=token(key, alg))
        assert ws.hello["user_id"] == "u1"


def test_unknown_or_ambiguous_kid_refused(tickgate, jclients, keys, tmp_path):
    p = tmp_path / "jwks.json"
    write_set(p, jwk("ed", keys["ed"]), jwk("ed2", keys["ed2"]), jwk("rs", keys["rs"]))
    gw = start(tickgate, p)
    assert status(jclients, gw, token(keys["ed"], "EdDSA", "nope")) == 401
    assert status(jclients, gw, token(keys["ed"], "EdDSA")) == 401  # two Ed25519 keys, no kid
    assert status(jclients, gw, token(None, "HS256")) == 401  # no oct key at all
    assert status(jclients, gw, token(keys["ed"], "EdDSA", "ed2")) == 401  # the other key's kid
    assert status(jclients, gw, token(keys["ed2"], "EdDSA", "ed2")) == 101
    assert status(jclients, gw, token(keys["rs"], "RS256")) == 101  # the one RSA key


def test_key_type_pins_the_algorithm(tickgate, jclients, keys, tmp_path):
    p = tmp_path / "jwks.json"
    write_set(p, jwk("hs", None), jwk("rs", keys["rs"]), jwk("ed", keys["ed"]))
    gw = start(tickgate, p)
    pem = keys["rs"].public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    # HS256 "signed" with the RSA public key, naming the RSA key: confusion.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rs"}).encode())
    now = int(time.time())
    body = b64(json.dumps({"sub": "evil", "exp": now + 600}).encode())
    import hmac, hashlib
    sig = b64(hmac.new(pem, (header + "." + body).encode(), hashlib.sha256).digest())
    assert status(jclients, gw, header + "." + body + "." + sig) == 401
    # An RSA signature naming the oct key; an Ed25519 one naming the RSA key.
    assert status(jclients, gw, token(keys["rs"], "RS256", "hs")) == 401
    assert status(jclients, gw, token(keys["ed"], "EdDSA", "rs")) == 401
    # EdDSA not among the configured algorithms: refused even with its key.
    gw2 = tickgate("--auth.jwks_file=%s" % p, "--auth.jwt_algorithms=HS256", secret=False)
    assert status(jclients, gw2, token(keys["ed"], "EdDSA", "ed")) == 401
    assert status(jclients, gw2, token(None, "HS256", "hs")) == 101


def test_rotation_on_sighup_keeps_connections(tickgate, jclients, keys, tmp_path):
    p = tmp_path / "jwks.json"
    write_set(p, jwk("k1", keys["ed"]))
    gw = start(tickgate, p)
    live = jclients.open(gw, token=token(keys["ed"], "EdDSA", "k1", sub="live"))
    new = token(keys["ed2"], "EdDSA", "k2")
    assert status(jclients, gw, new) == 401
    # Both keys while clients move over, then only the new one.
    write_set(p, jwk("k1", keys["ed"]), jwk("k2", keys["ed2"]))
    os.kill(gw.pid, signal.SIGHUP)
    wait_until(lambda: status(jclients, gw, new) == 101, what="the new key accepted after SIGHUP")
    assert status(jclients, gw, token(keys["ed"], "EdDSA", "k1")) == 101
    write_set(p, jwk("k2", keys["ed2"]))
    os.kill(gw.pid, signal.SIGHUP)
    wait_until(lambda: status(jclients, gw, token(keys["ed"], "EdDSA", "k1")) == 401, what="the old key retired")
    assert live.request({"type": "heartbeat"})["type"] == "heartbeat_ack"
    # A broken set on SIGHUP fails the whole reload: the previous set stays.
    p.write_text("{not json")
    os.kill(gw.pid, signal.SIGHUP)
    line = wait_until(lambda: next((l for l in gw.stderr.splitlines() if "reload failed" in l), None),
                      what="the reload error")
    assert "jwks" in line, line
    assert status(jclients, gw, token(keys["ed2"], "EdDSA", "k2")) == 101


@pytest.mark.parametrize("bad,why", [
    ({"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AQAB"}, "2048"),
    ({"kty": "oct", "kid": "x", "k": b64(b"short")}, "32 bytes"),
    ({"kty": "oct", "kid": "x", "k": b64(OCT), "alg": "RS256"}, "alg does not match"),
    ({"kty": "OKP", "kid": "x", "crv": "X25519", "x": b64(b"\0" * 32)}, "Ed25519"),
    ({"kty": "EC", "kid": "x", "crv": "P-256", "x": b64(b"\1" * 32), "y": b64(b"\2" * 32)}, "P-256 point"),
    ({"kty": "oct", "k": b64(OCT)}, "kid"),
    ({"kty": "oct", "kid": "x", "k": b64(OCT), "use": "enc"}, "use must be sig"),
])
def test_bad_sets_are_start_errors(gateway, tmp_path, bad, why):
    p = tmp_path / "jwks.json"
    p.write_text(json.dumps({"keys": [bad]}))
    gw = gateway("--auth.jwks_file=%s" % p, ALL_ALGS, wait=False)
    assert gw.proc.wait(10) == 2
    gw.start_failed = True  # refused on purpose
    wait_until(lambda: "auth.jwks_file" in gw.stderr, what="the start error")
    assert why in gw.stderr, gw.stderr


def test_private_members_refused(gateway, keys, tmp_path):
    d = jwk("ed", keys["ed"])
    d["d"] = b64(b"\0" * 32)
    p = tmp_path / "jwks.json"
    p.write_text(json.dumps({"keys": [d]}))
    gw = gateway("--auth.jwks_file=%s" % p, ALL_ALGS, wait=False)
    assert gw.proc.wait(10) == 2
    gw.start_failed = True
    wait_until(lambda: "private key" in gw.stderr, what="the start error")


def test_token_command_kid_and_entitlements(tickgate, jclients, tmp_path):
    p = tmp_path / "jwks.json"
    write_set(p, jwk("hs1", None))
    out = subprocess.run([tickgate_bin(), "token", "--sub", "cli", "--kid", "hs1", "--symbols", "AAPL,MS*",
                          "--delayed-symbols", "G*", "--auth.jwks_file=%s" % p], capture_output=True, text=True,
                         env=child_env(), check=True).stdout.strip()
    hdr = jwt.get_unverified_header(out)
    assert hdr["kid"] == "hs1" and hdr["alg"] == "HS256"
    claims = jwt.decode(out, OCT, algorithms=["HS256"])
    assert claims["symbols"] == ["AAPL", "MS*"] and claims["delayed_symbols"] == ["G*"], claims
    gw = tickgate("--auth.jwks_file=%s" % p, secret=False)
    ws = jclients.open(gw, token=out)
    ws.send({"type": "subscribe", "symbols": ["MSFT", "GOOGL", "TSLA"]})
    got = ws.fence()
    conf = dict(got[0])
    assert sorted(conf.pop("epochs")) == ["GOOGL", "MSFT"], got
    assert conf == {"type": "subscription_confirmed", "symbols": ["MSFT", "GOOGL"], "delayed": ["GOOGL"]}, got

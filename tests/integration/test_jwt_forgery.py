"""JWT forgery at the /ws handshake (contract section 2): alg none in every
spelling, tampered payloads and headers, foreign signatures, time claims at
and past the leeway, issuer/audience, algorithm confusion (HS256 keyed with
the RSA/EC public key), RS256 and ES256 with real keys, and algorithms that
are not configured. Every refusal is a plain HTTP 401 before any upgrade and
is counted in tickgate_auth_failures_total."""
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from conftest import OTHER_SECRET, SECRET, get_metrics, mint
from sec_helpers import assert_refused, sgw, sws  # noqa: F401 (fixtures)


def b64(data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(key, signing_input):
    if isinstance(key, str):
        key = key.encode()
    return hmac.new(key, signing_input.encode(), hashlib.sha256).digest()


def craft(header, payload, key=None, sig=None):
    """A compact JWS built by hand: signed with HMAC-SHA256 under key, or with
    the raw signature bytes sig (b"" = empty)."""
    si = b64(header) + "." + b64(payload)
    if sig is None:
        sig = hs256(key, si) if key is not None else b""
    return si + "." + (b64(sig) if sig else "")


def claims(sub="mallory", role="viewer", ttl=3600, **extra):
    now = int(time.time())
    c = {"sub": sub, "role": role, "iat": now, "exp": now + ttl}
    c.update(extra)
    return c


def auth_failures(gw):
    m = get_metrics(gw)
    return sum(v for k, v in m.items() if k.startswith("tickgate_auth_failures_total{"))


def refused_401(sws, gw, token, query=False):
    if query:
        resp = sws.handshake(gw, query="?token=" + token)
    else:
        resp = sws.handshake(gw, token=token)
    return assert_refused(resp, 401)


class Refusals:
    """Counts refusals so the metric can be checked exactly."""

    def __init__(self, sws, gw):
        self.sws, self.gw, self.n = sws, gw, 0
        self.base = auth_failures(gw)

    def check(self, token, what, query=False):
        try:
            refused_401(self.sws, self.gw, token, query)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e)) from None
        self.n += 1

    def assert_counted(self):
        assert auth_failures(self.gw) - self.base == self.n, "auth failures not counted one per refusal"


# ---------------------------------------------------------------------------
# HS256
# ---------------------------------------------------------------------------

def test_hs256_forgeries_refused(sgw, sws):
    # More forgeries than security.critical_violations: each failed handshake
    # counts against the IP, which would be blocked (403) before the end.
    gw = sgw("--security.critical_violations=1000")
    r = Refusals(sws, gw)
    good = mint("mallory", "viewer")
    assert sws.open(gw, token=good).hello["role"] == "viewer"
    c = claims(role="admin")
    # alg none, in every spelling, with an empty signature or a real one.
    for alg in ("none", "None", "NONE", "nOnE"):
        r.check(craft({"alg": alg, "typ": "JWT"}, c, sig=b""), "alg %s, empty signature" % alg)
    r.check(craft({"alg": "none", "typ": "JWT"}, c, key=SECRET), "alg none with an HMAC signature")
    r.check(craft({"alg": "none"}, c, sig=b""), "alg none via query", query=True)
    r.check(craft({"typ": "JWT"}, c, key=SECRET), "no alg")
    r.check(craft({"alg": "HS256 ", "typ": "JWT"}, c, key=SECRET), "alg with trailing space")
    r.check(craft({"alg": "hs256", "typ": "JWT"}, c, key=SECRET), "alg lower-case")
    r.check(jwt.encode(c, SECRET, algorithm="HS512"), "HS512 (not configured)")
    r.check(jwt.encode(c, SECRET, algorithm="HS384"), "HS384 (not configured)")
    # Tampered payload: role changed to admin, signature kept.
    h, p, s = good.split(".")
    forged_payload = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    forged_payload["role"] = "admin"
    r.check(".".join([h, b64(forged_payload), s]), "tampered payload")
    # Tampered header, signature kept.
    r.check(".".join([b64({"alg": "HS256", "typ": "JWT", "kid": "x"}), p, s]), "tampered header")
    # Signature from another secret; truncated, empty, or missing signature.
    r.check(mint("mallory", "admin", secret=OTHER_SECRET), "another secret")
    r.check(good[:-4], "truncated signature")
    r.check(h + "." + p + ".", "empty signature")
    r.check(h + "." + p, "two parts")
    r.check(good + ".x", "four parts")
    r.check(craft({"alg": "HS256"}, c, sig=hs256(SECRET, "x")), "signature over other data")
    # Duplicate claims (parser differential: first or last "role" wins?) are refused.
    now = int(time.time())
    dup = ('{"sub":"mallory","role":"viewer","exp":%d,"role":"admin"}' % (now + 3600)).encode()
    r.check(craft({"alg": "HS256", "typ": "JWT"}, dup, key=SECRET), "duplicate role claim")
    dup_hdr = b'{"alg":"HS256","alg":"none"}'
    r.check(craft(dup_hdr, c, key=SECRET), "duplicate alg header")
    r.assert_counted()
    # The genuine token still works: nothing above upset the server.
    assert sws.open(gw, token=good).hello["user_id"] == "mallory"


def test_hs256_claims_and_leeway(sgw, sws):
    gw = sgw("--auth.jwt_leeway_s=30")
    now = int(time.time())
    r = Refusals(sws, gw)
    # exp: 60 s ago is past the 30 s leeway; 10 s ago is within it.
    r.check(mint("late", "viewer", exp=now - 60), "exp now-60")
    assert sws.open(gw, token=mint("late", "viewer", exp=now - 10)).hello["user_id"] == "late"
    # nbf / iat in the future beyond the leeway: refused; within: accepted.
    r.check(mint("early", "viewer", nbf=now + 120), "nbf now+120")
    r.check(mint("early", "viewer", iat=now + 120), "iat now+120")
    assert sws.open(gw, token=mint("early1", "viewer", nbf=now + 10)).hello["user_id"] == "early1"
    assert sws.open(gw, token=mint("early2", "viewer", iat=now + 10)).hello["user_id"] == "early2"
    # Required claims and their types.
    r.check(mint("noexp", "viewer", drop=("exp",)), "no exp")
    r.check(mint(drop=("sub",)), "no sub")
    r.check(mint("", "viewer"), "empty sub")
    r.check(mint("strexp", "viewer", exp=str(now + 3600)), "exp as a string")
    r.check(mint("badrole", "emperor"), "unknown role")
    r.check(mint("anon", "anonymous"), "role anonymous claimed")
    r.assert_counted()
    m = get_metrics(gw)
    assert m['tickgate_auth_failures_total{reason="expired"}'] == 1, m


def test_issuer_and_audience(sgw, sws):
    gw = sgw("--auth.jwt_issuer=https://issuer.test", "--auth.jwt_audience=tickgate")
    r = Refusals(sws, gw)
    r.check(mint("a", "viewer", aud="tickgate"), "no iss")
    r.check(mint("a", "viewer", iss="https://evil.test", aud="tickgate"), "wrong iss")
    r.check(mint("a", "viewer", iss="https://issuer.test"), "no aud")
    r.check(mint("a", "viewer", iss="https://issuer.test", aud="other"), "wrong aud")
    r.check(mint("a", "viewer", iss="https://issuer.test", aud=["other", "more"]), "aud list without ours")
    r.check(mint("a", "viewer", iss="https://issuer.test/", aud="tickgate"), "iss with a trailing slash")
    r.assert_counted()
    ws = sws.open(gw, token=mint("ok1", "trader", iss="https://issuer.test", aud="tickgate"))
    assert (ws.hello["user_id"], ws.hello["role"]) == ("ok1", "trader")
    ws = sws.open(gw, token=mint("ok2", "viewer", iss="https://issuer.test", aud=["x", "tickgate"]))
    assert ws.hello["user_id"] == "ok2"


def test_non_canonical_base64url_refused(sgw, sws):
    """base64url in a JWS has one spelling (RFC 7515 section 2: no padding,
    unused bits zero): a second spelling of a valid token is a malleable
    token, so padding on any part and non-zero spare bits are refused."""
    gw = sgw()
    r = Refusals(sws, gw)
    good = mint("mallory", "viewer")
    h, p, s = good.split(".")
    assert len(s) == 43  # 32 bytes: 2 spare bits in the last character
    r.check(good + "=", "signature with one '='")
    r.check(good + "==", "signature with two '='")
    r.check(good + "=", "padded signature via query", query=True)
    # Header and payload with the padding their length calls for.
    hp = h + "=" * (-len(h) % 4)
    pp = p + "=" * (-len(p) % 4)
    if hp != h:
        r.check(".".join([hp, p, b64(hs256(SECRET, hp + "." + p))]), "padded header, signed as sent")
    if pp != p:
        r.check(".".join([h, pp, b64(hs256(SECRET, h + "." + pp))]), "padded payload, signed as sent")
    # The last signature character with its spare bits set decodes to the
    # same bytes in a lenient decoder.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(s[-1])
    assert last & 3 == 0
    r.check(".".join([h, p, s[:-1] + alphabet[last | 1]]), "spare bits set in the signature")
    r.assert_counted()
    assert sws.open(gw, token=good).hello["user_id"] == "mallory"


# ---------------------------------------------------------------------------
# RS256 / ES256 and algorithm confusion
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_other = ec.generate_private_key(ec.SECP256R1())

    def pem_priv(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    def pem_pub(k):
        return k.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)

    return {"rsa": pem_priv(rsa_key), "rsa_pub": pem_pub(rsa_key), "rsa_other": pem_priv(rsa_other),
            "ec": pem_priv(ec_key), "ec_pub": pem_pub(ec_key), "ec_other": pem_priv(ec_other),
            "ec_obj": ec_key}


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_rs256_and_hs_rs_confusion(sgw, sws, keys, tmp_path):
    pub = write(tmp_path, "pub.pem", keys["rsa_pub"])
    gw = sgw("--auth.jwt_algorithms=RS256", "--auth.jwt_public_key_file=" + pub)
    ok = jwt.encode(claims("rsa-user", "trader"), keys["rsa"], algorithm="RS256")
    ws = sws.open(gw, token=ok)
    assert (ws.hello["user_id"], ws.hello["role"]) == ("rsa-user", "trader"), ws.hello
    r = Refusals(sws, gw)
    c = claims("mallory", "admin")
    # HS256 keyed with the public key text (with and without its newline).
    pem = keys["rsa_pub"]
    r.check(craft({"alg": "HS256", "typ": "JWT"}, c, key=pem), "HS256 keyed with the PEM public key")
    r.check(craft({"alg": "HS256", "typ": "JWT"}, c, key=pem.rstrip(b"\n")), "HS256 keyed with PEM (trimmed)")
    # HS256 with the configured secret: HS256 is not an accepted algorithm here.
    r.check(mint("mallory", "admin"), "HS256 with the real secret, not configured")
    r.check(jwt.encode(c, keys["rsa_other"], algorithm="RS256"), "RS256 from another key")
    r.check(jwt.encode(c, keys["rsa"], algorithm="PS256"), "PS256 with the right key")
    r.check(jwt.encode(c, keys["ec"], algorithm="ES256"), "ES256 on an RS256 server")
    r.check(craft({"alg": "none"}, c, sig=b""), "alg none")
    h, p, s = ok.split(".")
    r.check(".".join([h, b64(c), s]), "RS256 tampered payload")
    r.check(".".join([h, p, s[:-8]]), "RS256 truncated signature")
    r.assert_counted()


def test_rs256_signature_must_be_the_modulus_length(sgw, sws, keys, tmp_path):
    """An RS256 signature is exactly the modulus length (RFC 8017 8.2.2): one
    whose leading zero byte was dropped is another spelling of the same
    signature, refused like any other non-canonical form."""
    pub = write(tmp_path, "pub.pem", keys["rsa_pub"])
    gw = sgw("--auth.jwt_algorithms=RS256", "--auth.jwt_public_key_file=" + pub)
    priv = serialization.load_pem_private_key(keys["rsa"], password=None)
    hdr = b64({"alg": "RS256", "typ": "JWT"})
    for i in range(20000):  # about 1 in 256 signatures starts with a zero byte
        si = hdr + "." + b64(claims("rsa-%d" % i, "viewer"))
        sig = priv.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256())
        if sig[0] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero byte")
    assert sws.open(gw, token=si + "." + b64(sig)).hello["user_id"] == "rsa-%d" % i
    r = Refusals(sws, gw)
    r.check(si + "." + b64(sig[1:]), "leading zero byte dropped")
    r.check(si + "." + b64(b"\0" + sig), "a zero byte added")
    r.assert_counted()


def test_hs256_and_rs256_together_still_no_confusion(sgw, sws, keys, tmp_path):
    pub = write(tmp_path, "pub.pem", keys["rsa_pub"])
    gw = sgw("--auth.jwt_algorithms=HS256,RS256", "--auth.jwt_public_key_file=" + pub)
    assert sws.open(gw, token=mint("hs", "viewer")).hello["user_id"] == "hs"
    assert sws.open(gw, token=jwt.encode(claims("rs"), keys["rsa"], algorithm="RS256")).hello["user_id"] == "rs"
    r = Refusals(sws, gw)
    r.check(craft({"alg": "HS256", "typ": "JWT"}, claims(role="admin"), key=keys["rsa_pub"]),
            "HS256 keyed with the PEM public key")
    r.assert_counted()


def test_es256(sgw, sws, keys, tmp_path):
    pub = write(tmp_path, "ec.pem", keys["ec_pub"])
    gw = sgw("--auth.jwt_algorithms=ES256", "--auth.jwt_public_key_file=" + pub)
    ok = jwt.encode(claims("ec-user", "analyst"), keys["ec"], algorithm="ES256")
    ws = sws.open(gw, token=ok)
    assert (ws.hello["user_id"], ws.hello["role"]) == ("ec-user", "analyst"), ws.hello
    r = Refusals(sws, gw)
    c = claims("mallory", "admin")
    r.check(jwt.encode(c, keys["rsa"], algorithm="RS256"), "RS256 on an ES256-only server")
    r.check(jwt.encode(c, keys["ec_other"], algorithm="ES256"), "ES256 from another key")
    r.check(craft({"alg": "HS256", "typ": "JWT"}, c, key=keys["ec_pub"]), "HS256 keyed with the EC PEM")
    r.check(mint("mallory", "admin"), "HS256 with the real secret, not configured")
    # A DER-encoded ECDSA signature is not the JWS form (r||s, 64 bytes).
    si = b64({"alg": "ES256", "typ": "JWT"}) + "." + b64(c)
    der = keys["ec_obj"].sign(si.encode(), ec.ECDSA(hashes.SHA256()))
    r.check(si + "." + b64(der), "ES256 with a DER signature")
    h, p, s = ok.split(".")
    r.check(".".join([h, b64(c), s]), "ES256 tampered payload")
    r.check(".".join([h, p, b64(b"\0" * 64)]), "ES256 zero signature")
    r.assert_counted()


def test_forged_token_in_band_authenticate(sgw, sws):
    """The same verification applies to the in-band authenticate."""
    gw = sgw()
    ws = sws.open(gw)
    base = auth_failures(gw)
    for i, tok in enumerate([craft({"alg": "none"}, claims(role="admin"), sig=b""),
                             mint("mallory", "admin", secret=OTHER_SECRET)]):
        rep = ws.request({"type": "authenticate", "token": tok, "id": i})
        assert rep["type"] == "error" and rep["code"] == "auth_failed" and rep["id"] == i, rep
    assert auth_failures(gw) - base == 2
    # Still anonymous.
    rep = ws.request({"type": "publish", "updates": [], "id": "p"})
    assert rep["type"] == "error" and rep["code"] == "forbidden", rep

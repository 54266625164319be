"""Identity and permissions on the JSON endpoint /ws (contract sections 2, 3):
credentials at the handshake (JWT in the Authorization header or ?token=,
API keys in X-API-Key or ?api_key=, anonymous), refusals as plain HTTP
before the upgrade, the users file, Origin and connection limits, the
`hash-key` and `token` subcommands, in-band `authenticate`, the role table
and token expiry while connected.

Each refusal runs against its own gateway, so that per-IP security rules
(violations, auto-block) can never couple one case to another."""
import base64
import hashlib
import json
import subprocess
import time

import jwt
import pytest

from conftest import (strip_epochs, OTHER_SECRET, SECRET, SECRET_FLAG, assert_refused, child_env, get_metrics, mint, tickgate_bin,
                      wait_metrics, wait_until)

BUILTIN_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "MA", "UNH", "JNJ"]

KEYS = {"alice": "alice-api-key-0001", "bob": "bob-api-key-0002", "pub": "publisher-api-key-0003",
        "dave": "dave-api-key-0004"}


def stored(key):
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def users_file(tmp_path):
    users = {"users": [
        {"id": "u1", "username": "alice", "role": "trader", "active": True, "api_keys": [stored(KEYS["alice"])]},
        {"id": "u2", "username": "bob", "role": "viewer", "active": False, "api_keys": [stored(KEYS["bob"])]},
        {"id": "pub1", "username": "feed", "role": "publisher", "active": True, "api_keys": [stored(KEYS["pub"])]},
        {"id": "u4", "username": "dave", "role": "analyst", "api_keys": [stored(KEYS["dave"])]},
        {"id": "u5", "username": "eve", "role": "viewer", "active": True},
    ]}
    p = tmp_path / "users.json"
    p.write_text(json.dumps(users))
    return str(p)


def assert_no_secret_in_output(gw, *secrets):
    out = gw.stdout + gw.stderr
    for s in secrets:
        assert s not in out, "a credential appears in the server's output"


# ---------------------------------------------------------------------------
# handshake identity
# ---------------------------------------------------------------------------

def test_anonymous_connected_message(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    h = ws.hello
    assert h["role"] == "anonymous", h
    assert "user_id" in h and h["user_id"] is None, h
    assert isinstance(h["client_id"], str) and h["client_id"].startswith("c-"), h
    assert h["heartbeat_interval_s"] == 30, h
    assert h["limits"] == {"max_subscriptions": 3, "max_messages_per_minute": 60, "max_message_bytes": 65536}, h
    # Distinct connections get distinct client ids.
    assert jclients.open(gw).hello["client_id"] != h["client_id"]


@pytest.mark.parametrize("role,max_subs", [("super_admin", 100), ("admin", 100), ("analyst", 100),
                                           ("trader", 100), ("viewer", 10), ("publisher", 0)])
def test_bearer_token_sets_role(tickgate, jclients, role, max_subs):
    gw = tickgate()
    ws = jclients.open(gw, token=mint("user-" + role, role))
    assert ws.hello["role"] == role, ws.hello
    assert ws.hello["user_id"] == "user-" + role, ws.hello
    assert ws.hello["limits"]["max_subscriptions"] == max_subs, ws.hello


def test_token_without_role_claim_is_viewer(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw, token=mint("u9"))
    assert (ws.hello["role"], ws.hello["user_id"]) == ("viewer", "u9"), ws.hello
    assert ws.hello["limits"]["max_subscriptions"] == 10


def test_token_in_query(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw, query="?token=" + mint("u7", "trader"))
    assert (ws.hello["role"], ws.hello["user_id"]) == ("trader", "u7"), ws.hello


def test_authorization_header_wins_over_query(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw, token=mint("hdr", "analyst"), query="?token=" + mint("qry", "trader"))
    assert (ws.hello["role"], ws.hello["user_id"]) == ("analyst", "hdr"), ws.hello


def test_token_within_leeway_is_accepted(tickgate, jclients):
    gw = tickgate()  # default leeway 30 s
    ws = jclients.open(gw, token=mint("late", "viewer", ttl=-10))
    assert ws.hello["user_id"] == "late"


@pytest.mark.parametrize("where", ["header", "query"])
def test_api_key_identity_from_users_file(tickgate, jclients, users_file, where):
    gw = tickgate("--auth.users_file=" + users_file)
    if where == "header":
        ws = jclients.open(gw, headers={"X-API-Key": KEYS["alice"]})
    else:
        ws = jclients.open(gw, query="?api_key=" + KEYS["alice"])
    assert (ws.hello["role"], ws.hello["user_id"]) == ("trader", "u1"), ws.hello
    assert ws.hello["limits"]["max_subscriptions"] == 100
    # "active" defaults to true when absent.
    ws = jclients.open(gw, headers={"X-API-Key": KEYS["dave"]})
    assert (ws.hello["role"], ws.hello["user_id"]) == ("analyst", "u4"), ws.hello
    assert_no_secret_in_output(gw, KEYS["alice"], KEYS["dave"])


def test_users_file_role_wins_over_token_role(tickgate, jclients, users_file):
    gw = tickgate("--auth.users_file=" + users_file)
    ws = jclients.open(gw, token=mint("u5", "admin"))
    assert (ws.hello["role"], ws.hello["user_id"]) == ("viewer", "u5"), ws.hello
    ws = jclients.open(gw, token=mint("u1", "viewer"))
    assert (ws.hello["role"], ws.hello["user_id"]) == ("trader", "u1"), ws.hello


# ---------------------------------------------------------------------------
# handshake refusals
# ---------------------------------------------------------------------------

def _tamper(tok):
    head, payload, sig = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "super_admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (head, forged, sig)


def _alg_none():
    b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()  # noqa: E731
    now = int(time.time())
    return "%s.%s." % (b({"alg": "none", "typ": "JWT"}), b({"sub": "u1", "role": "admin", "exp": now + 3600}))


def _alg_hs512():
    return mint("u1", "admin", algorithm="HS512")


BAD_TOKENS = {
    "bad_signature": lambda: _tamper(mint("u1", "viewer")),
    "garbage_signature": lambda: mint("u1", "viewer")[:-6] + "AAAAAA",
    "expired_beyond_leeway": lambda: mint("u1", "viewer", ttl=-120),
    "alg_none": _alg_none,
    "alg_not_configured": _alg_hs512,
    "other_secret": lambda: mint("u1", "viewer", secret=OTHER_SECRET),
    "missing_sub": lambda: mint("u1", "viewer", drop=("sub",)),
    "missing_exp": lambda: mint("u1", "viewer", drop=("exp",)),
    "empty_sub": lambda: mint("", "viewer"),
    "unknown_role": lambda: mint("u1", "root"),
    "anonymous_role": lambda: mint("u1", "anonymous"),
    "not_a_jwt": lambda: "not.a.jwt",
    "two_parts": lambda: ".".join(mint("u1").split(".")[:2]),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
@pytest.mark.parametrize("where", ["header", "query"])
def test_bad_token_refused_401(tickgate, jclients, case, where):
    gw = tickgate()
    tok = BAD_TOKENS[case]()
    if where == "header":
        resp = jclients.handshake(gw, token=tok)
    else:
        resp = jclients.handshake(gw, query="?token=" + tok)
    assert_refused(resp, 401)


def test_non_bearer_authorization_refused_401(tickgate, jclients):
    gw = tickgate()
    resp = jclients.handshake(gw, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_refused(resp, 401)


def test_refused_connection_is_closed(tickgate, clients):
    """After a refusal the server closes the connection: no WebSocket follows."""
    gw = tickgate()
    raw = clients.raw(gw)
    resp = raw.handshake("/ws", {"Authorization": "Bearer " + mint("u1", secret=OTHER_SECRET)})
    assert_refused(resp, 401)
    raw.wait_closed(timeout=5)


@pytest.mark.parametrize("where", ["header", "query"])
def test_unknown_api_key_refused_401(tickgate, jclients, users_file, where):
    gw = tickgate("--auth.users_file=" + users_file)
    if where == "header":
        resp = jclients.handshake(gw, headers={"X-API-Key": "no-such-key"})
    else:
        resp = jclients.handshake(gw, query="?api_key=no-such-key")
    assert_refused(resp, 401)


def test_api_key_without_users_file_refused_401(tickgate, jclients):
    gw = tickgate()
    assert_refused(jclients.handshake(gw, headers={"X-API-Key": KEYS["alice"]}), 401)


def test_sub_not_in_users_file_refused_403(tickgate, jclients, users_file):
    gw = tickgate("--auth.users_file=" + users_file)
    assert_refused(jclients.handshake(gw, token=mint("stranger", "trader")), 403)


def test_inactive_user_token_refused_403(tickgate, jclients, users_file):
    gw = tickgate("--auth.users_file=" + users_file)
    assert_refused(jclients.handshake(gw, token=mint("u2", "viewer")), 403)


def test_inactive_user_api_key_refused_403(tickgate, jclients, users_file):
    gw = tickgate("--auth.users_file=" + users_file)
    assert_refused(jclients.handshake(gw, headers={"X-API-Key": KEYS["bob"]}), 403)


def test_anonymous_disabled(tickgate, jclients):
    gw = tickgate("--auth.allow_anonymous=false")
    assert_refused(jclients.handshake(gw), 401)
    ws = jclients.open(gw, token=mint("u1", "trader"))
    assert ws.hello["role"] == "trader"


def test_allowed_origins(tickgate, jclients):
    gw = tickgate("--server.allowed_origins=http://good.example")
    assert_refused(jclients.handshake(gw, headers={"Origin": "http://evil.example"}), 403)
    assert jclients.open(gw, headers={"Origin": "http://good.example"}).hello["role"] == "anonymous"
    assert jclients.open(gw).hello["role"] == "anonymous"  # no Origin header: allowed


def test_max_connections_503(tickgate, jclients):
    gw = tickgate("--limits.max_connections=2")
    a = jclients.open(gw)
    jclients.open(gw)
    resp = jclients.handshake(gw)
    assert_refused(resp, 503)
    assert resp.headers.get("retry-after"), resp
    # Closing one frees its place (release is asynchronous: retry until it is).
    a.send({"type": "heartbeat"})
    a.raw.send_close(1000)
    a.raw.expect_close(1000, reply=False)

    def third():
        r = jclients.handshake(gw)
        return r if r.status == 101 else None

    wait_until(third, timeout=5, what="a third connection after one closed")


# ---------------------------------------------------------------------------
# helper subcommands
# ---------------------------------------------------------------------------

def run_cmd(*args, timeout=10):
    p = subprocess.run([tickgate_bin()] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       env=child_env(), timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


@pytest.mark.parametrize("key", ["abc", "a much longer API key with spaces and ünïcödé"])
def test_hash_key_output(key):
    rc, out, err = run_cmd("hash-key", key)
    assert rc == 0, err
    assert out == "sha256:%s\n" % hashlib.sha256(key.encode()).hexdigest(), out


def test_hash_key_abc_known_value():
    rc, out, _ = run_cmd("hash-key", "abc")
    assert out.strip() == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hash_key_output_works_in_users_file(tickgate, jclients, tmp_path):
    rc, out, _ = run_cmd("hash-key", "my-secret-key")
    assert rc == 0
    p = tmp_path / "u.json"
    p.write_text(json.dumps({"users": [{"id": "k1", "role": "analyst", "active": True,
                                        "api_keys": [out.strip()]}]}))
    gw = tickgate("--auth.users_file=%s" % p)
    ws = jclients.open(gw, headers={"X-API-Key": "my-secret-key"})
    assert (ws.hello["user_id"], ws.hello["role"]) == ("k1", "analyst")


def test_token_subcommand(tickgate, jclients):
    before = int(time.time())
    rc, out, err = run_cmd("token", "--sub", "u1", "--role", "trader", "--ttl", "3600", SECRET_FLAG)
    assert rc == 0, err
    tok = out.strip()
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u1" and claims["role"] == "trader", claims
    assert before + 3600 <= claims["exp"] <= int(time.time()) + 3600, claims
    assert jwt.get_unverified_header(tok)["alg"] == "HS256"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tok, OTHER_SECRET, algorithms=["HS256"])
    # And the gateway accepts it.
    gw = tickgate()
    ws = jclients.open(gw, token=tok)
    assert (ws.hello["user_id"], ws.hello["role"]) == ("u1", "trader")


def test_token_subcommand_without_role(tickgate):
    rc, out, err = run_cmd("token", "--sub", "v1", "--ttl", "60", SECRET_FLAG)
    assert rc == 0, err
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "v1" and "role" not in claims, claims
    assert claims["exp"] - int(time.time()) <= 60


def test_token_subcommand_needs_secret_and_sub():
    rc, out, _ = run_cmd("token", "--sub", "u1")
    assert rc != 0 and out == ""
    rc, out, _ = run_cmd("token", "--role", "trader", SECRET_FLAG)
    assert rc != 0 and out == ""


@pytest.mark.parametrize("ttl", ["9223372036854775807", "99999999999999999999", "3600x", "0", "-5", ""])
def test_token_subcommand_refuses_a_ttl_out_of_range(ttl):
    """now + ttl must not overflow into an exp in the past (a huge --ttl
    minted an already-expired token), and a ttl that is not a number of
    seconds is a usage error, not a silent 3600 or 0."""
    rc, out, err = run_cmd("token", "--sub", "u1", "--ttl", ttl, SECRET_FLAG)
    assert rc == 2 and out == "", (rc, out, err)
    assert "--ttl" in err


def test_token_subcommand_longest_ttl():
    rc, out, err = run_cmd("token", "--sub", "u1", "--ttl", "3153600000", SECRET_FLAG)
    assert rc == 0, err
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    assert claims["exp"] > time.time() + 3153600000 - 60, claims


# ---------------------------------------------------------------------------
# in-band authenticate
# ---------------------------------------------------------------------------

def test_authenticate_in_band(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    assert ws.hello["role"] == "anonymous"
    r = ws.request({"type": "authenticate", "token": mint("u1", "trader"), "id": 5})
    assert r == {"type": "authenticated", "user_id": "u1", "role": "trader", "id": 5}, r
    # The new role's limits apply: a trader may watch more than 3 symbols.
    conf = ws.subscribe(BUILTIN_SYMBOLS[:5])
    assert conf["symbols"] == BUILTIN_SYMBOLS[:5], conf
    m = get_metrics(gw)
    assert m['tickgate_connections{role="trader"}'] == 1
    assert m['tickgate_connections{role="anonymous"}'] == 0


def test_user_ids_short_and_long_across_reauthentication(tickgate, jclients):
    """Short ids are kept inside the connection, long ones on their own;
    switching between them in-band keeps the right id every time (and, in
    `make asan`, frees each exactly once)."""
    gw = tickgate()
    long_id = "user-" + "x" * 60 + "-\u00e9\"q"
    ws = jclients.open(gw, token=mint(long_id, "trader"))
    assert ws.hello["user_id"] == long_id, ws.hello
    for i, uid in enumerate(["u" * 23, "u" * 24, "short", long_id + "2", "a"]):
        r = ws.request({"type": "authenticate", "token": mint(uid, "viewer"), "id": i})
        assert (r["type"], r["user_id"]) == ("authenticated", uid), r
    ws.close()
    assert jclients.open(gw, token=mint("u" * 23, "viewer")).hello["user_id"] == "u" * 23


def test_authenticate_with_api_key(tickgate, jclients, users_file):
    gw = tickgate("--auth.users_file=" + users_file)
    ws = jclients.open(gw)
    r = ws.request({"type": "authenticate", "api_key": KEYS["dave"], "id": "k"})
    assert r == {"type": "authenticated", "user_id": "u4", "role": "analyst", "id": "k"}, r


@pytest.mark.parametrize("cred", ["bad_signature", "expired", "other_secret", "unknown_api_key"])
def test_authenticate_failure_keeps_connection(tickgate, jclients, users_file, cred):
    gw = tickgate("--auth.users_file=" + users_file)
    ws = jclients.open(gw)
    msg = {"type": "authenticate", "id": 7}
    if cred == "bad_signature":
        msg["token"] = _tamper(mint("u1", "viewer"))
    elif cred == "expired":
        msg["token"] = mint("u1", "trader", ttl=-300)
    elif cred == "other_secret":
        msg["token"] = mint("u1", "trader", secret=OTHER_SECRET)
    else:
        msg["api_key"] = "nope"
    r = ws.request(msg)
    assert r.get("type") == "error" and r.get("code") == "auth_failed" and r.get("id") == 7, r
    # Still usable, and still anonymous (limit 3).
    ack = ws.request({"type": "heartbeat", "id": 8})
    assert ack["type"] == "heartbeat_ack" and ack["id"] == 8, ack
    r = ws.request({"type": "subscribe", "symbols": BUILTIN_SYMBOLS[:4]})
    assert strip_epochs(r) == {"type": "subscription_confirmed", "symbols": BUILTIN_SYMBOLS[:3]}, r
    r = ws.recv()
    assert r == {"type": "subscription_failed", "symbols": [BUILTIN_SYMBOLS[3]], "reason": "limit_exceeded"}, r


def test_authenticate_without_credentials_is_invalid_message(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    r = ws.request({"type": "authenticate", "id": 1})
    assert r["type"] == "error" and r["code"] == "invalid_message" and r["id"] == 1, r
    assert ws.request({"type": "heartbeat"})["type"] == "heartbeat_ack"


# ---------------------------------------------------------------------------
# the role table
# ---------------------------------------------------------------------------

def test_anonymous_may_not_publish(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw)
    r = ws.request({"type": "publish", "updates": [{"symbol": "AAPL", "price": 1.0}], "id": "p"})
    assert r["type"] == "error" and r["code"] == "forbidden" and r["id"] == "p", r
    assert get_metrics(gw)["tickgate_ticks_published_total"] == 0
    # The other base actions are allowed.
    assert ws.request({"type": "heartbeat"})["type"] == "heartbeat_ack"
    ws.subscribe(["AAPL"])
    assert ws.request({"type": "unsubscribe", "symbols": ["AAPL"]})["type"] == "unsubscription_confirmed"


@pytest.mark.parametrize("role", ["viewer", "trader", "analyst", "admin", "super_admin"])
def test_roles_that_may_not_publish(tickgate, jclients, role):
    gw = tickgate()
    ws = jclients.open(gw, token=mint("u", role))
    r = ws.request({"type": "publish", "updates": [{"symbol": "AAPL", "price": 1.0}]})
    if role == "super_admin":  # "all"
        assert r == {"type": "published", "count": 1}, r
    else:
        assert r["type"] == "error" and r["code"] == "forbidden", r


def test_publisher_may_publish_but_not_subscribe(tickgate, jclients):
    gw = tickgate()
    pub = jclients.publisher(gw)
    r = pub.request({"type": "subscribe", "symbols": ["AAPL"], "id": 3})
    assert r["type"] == "error" and r["code"] == "forbidden" and r["id"] == 3, r
    assert pub.publish([{"symbol": "AAPL", "price": 190.0}], id=4) == {"type": "published", "count": 1, "id": 4}
    assert pub.request({"type": "heartbeat"})["type"] == "heartbeat_ack"
    assert get_metrics(gw)["tickgate_subscriptions"] == 0


@pytest.mark.parametrize("role", ["viewer", "trader", "analyst", "admin", "super_admin"])
def test_roles_that_may_subscribe(tickgate, jclients, role):
    gw = tickgate()
    ws = jclients.open(gw, token=mint("u", role))
    conf = ws.subscribe(["AAPL", "MSFT"], id=role)
    assert strip_epochs(conf) == {"type": "subscription_confirmed", "symbols": ["AAPL", "MSFT"], "id": role}


def test_roles_override_makes_viewer_subscribe_forbidden(tickgate, jclients):
    gw = tickgate("--roles.viewer=heartbeat")
    ws = jclients.open(gw, token=mint("u", "viewer"))
    r = ws.request({"type": "subscribe", "symbols": ["AAPL"], "id": 1})
    assert r["type"] == "error" and r["code"] == "forbidden" and r["id"] == 1, r
    assert ws.request({"type": "heartbeat"})["type"] == "heartbeat_ack"
    m = get_metrics(gw)
    assert m["tickgate_subscriptions"] == 0
    assert m['tickgate_security_violations_total{kind="forbidden"}'] == 1
    # Other roles keep their defaults.
    jclients.open(gw, token=mint("t", "trader")).subscribe(["AAPL"])


def test_roles_override_grants_publish(tickgate, jclients):
    gw = tickgate("--roles.trader=base,publish")
    ws = jclients.open(gw, token=mint("u", "trader"))
    assert ws.publish([{"symbol": "AAPL", "price": 200}]) == {"type": "published", "count": 1}


# ---------------------------------------------------------------------------
# token expiry while connected
# ---------------------------------------------------------------------------

def test_token_expiry_warning_and_close_4001(tickgate, jclients):
    gw = tickgate("--auth.jwt_leeway_s=0", "--limits.sweep_interval_s=1")
    exp = int(time.time()) + 5
    tok = mint("short", "trader", exp=exp)
    ws = jclients.open(gw, token=tok)
    # Less than 60 s left: the warning comes at once, right after connected.
    w = ws.recv(timeout=2)
    assert w == {"type": "token_expiring", "expires_at": exp * 1000}, w
    # Another client refreshes its token in time and stays.
    stay = jclients.open(gw, token=mint("short2", "trader", exp=exp))
    assert stay.expect("token_expiring")["expires_at"] == exp * 1000
    r = stay.request({"type": "authenticate", "token": mint("short2", "trader", ttl=3600), "id": 1})
    assert r == {"type": "authenticated", "user_id": "short2", "role": "trader", "id": 1}, r
    # A third authenticates in band with a short token: warned at once too.
    inband = jclients.open(gw)
    r = inband.request({"type": "authenticate", "token": mint("short3", "viewer", exp=exp), "id": 9})
    assert r == {"type": "authenticated", "user_id": "short3", "role": "viewer", "id": 9}, r
    assert inband.recv(timeout=2) == {"type": "token_expiring", "expires_at": exp * 1000}
    # The first is closed with 4001 after exp (bounded wait).
    code, _, before = ws.raw.expect_close(4001, timeout=10)
    assert time.time() >= exp, "closed before the token expired"
    assert not [f for f in before if f.opcode == 1], "unexpected messages before the close: %r" % before
    inband.raw.expect_close(4001, timeout=5)
    # The refreshed client is still served after the old exp has passed.
    assert stay.request({"type": "heartbeat", "id": 2})["type"] == "heartbeat_ack"
    m = wait_metrics(gw, lambda m: m['tickgate_disconnections_total{reason="token_expired"}'] == 2, timeout=5,
                     what="two token_expired disconnections counted")
    assert m['tickgate_connections{role="trader"}'] == 1
    assert m['tickgate_connections{role="viewer"}'] == 0


def test_expiry_warning_60s_before_exp(tickgate, jclients):
    gw = tickgate("--limits.sweep_interval_s=1")
    exp = int(time.time()) + 62
    ws = jclients.open(gw, token=mint("soon", "trader", exp=exp))
    assert ws.fence() == []  # more than 60 s left: no warning yet
    w = ws.recv(timeout=6)
    assert w == {"type": "token_expiring", "expires_at": exp * 1000}, w
    assert time.time() >= exp - 60 - 1, (time.time(), exp)
    assert ws.fence() == []  # sent once


def test_long_token_gets_no_expiry_warning(tickgate, jclients):
    gw = tickgate()
    ws = jclients.open(gw, token=mint("u", "trader", ttl=3600))
    assert ws.fence() == []


@pytest.mark.parametrize("exp", [2 ** 63 - 1, 2 ** 63 - 20, 2 ** 62, 253402300800])
def test_far_future_exp_stays_connected(tickgate, jclients, exp):
    """An exp at the top of the int64 range is a token that does not expire:
    the sweep's exp + leeway and the warning's exp * 1000 must not wrap it
    into the past (it was closed 4001 at the first sweep)."""
    gw = tickgate("--limits.sweep_interval_s=1")
    ws = jclients.open(gw, token=mint("far", "trader", exp=exp))
    inband = jclients.open(gw)
    r = inband.request({"type": "authenticate", "token": mint("far2", "viewer", exp=exp), "id": 1})
    assert r == {"type": "authenticated", "user_id": "far2", "role": "viewer", "id": 1}, r
    # Two sweeps after both connected: each has looked at the tokens.
    first = get_metrics(gw)["tickgate_sweeper_last_run_timestamp_seconds"]
    wait_metrics(gw, lambda m: m["tickgate_sweeper_last_run_timestamp_seconds"] >= first + 2, timeout=10,
                 what="two more sweeps")
    assert ws.fence() == []  # no token_expiring, no close
    assert inband.fence() == []

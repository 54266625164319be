"""Issue 19's "first hour of a new user": each obstacle met by following
README is gone. The command line, configuration errors, start warnings, the
users file's statuses and the repository's front matter."""
import json
import os
import re

import pytest

from conftest import ROOT, SECRET, SECRET_FLAG, api, mint, wait_log
from test_lifecycle import run_tickgate


def test_help_mentions_subcommands_and_each_section_once():
    rc, out, err = run_tickgate(["--help"])
    assert rc == 0
    for word in ("tickgate token", "tickgate hash-key", "3600"):
        assert word in out, word
    sections = re.findall(r"^\[([a-z]+)\]$", out, re.M)
    assert len(sections) == len(set(sections)), sections


def test_hash_key_help_and_option_like_keys():
    rc, out, err = run_tickgate(["hash-key", "--help"])
    assert rc == 0 and "usage: tickgate hash-key" in out and not re.search(r"sha256:[0-9a-f]{64}", out)
    rc, out, err = run_tickgate(["hash-key", "-x"])
    assert rc == 2 and "--" in err
    rc, out, err = run_tickgate(["hash-key", "--", "-x"])
    assert rc == 0 and out.startswith("sha256:")


@pytest.mark.parametrize("args,needle", [
    (["--sub", "a", "--role", "bogus"], "--role 'bogus' is not a role"),
    (["--sub", "a", "--ttl", "0"], "--ttl '0' is not a whole number of seconds"),
    (["--role", "viewer"], "--sub USER is required"),
    (["--sub"], "--sub needs a value"),
])
def test_token_says_what_is_wrong(args, needle):
    rc, out, err = run_tickgate(["token", SECRET_FLAG] + args)
    assert rc == 2 and needle in err, err
    assert "default 3600" in err


def test_token_help_states_default_lifetime():
    rc, out, err = run_tickgate(["token", "--help"])
    assert rc == 0 and "default 3600" in out


def test_token_with_secret_file(tmp_path):
    secret = tmp_path / "jwt.secret"
    secret.write_text(SECRET + "\n")
    rc, out, err = run_tickgate(["token", "--sub", "alice", "--auth.jwt_secret_file=%s" % secret])
    assert rc == 0 and out.count(".") == 2, err


@pytest.mark.parametrize("text,needle", [
    ("[server]\nlisten 127.0.0.1:1\n", ":2: expected KEY = VALUE, found no '=' after 'listen'"),
    ("[server]\nworkers = 2\nworkers = x\n", ":3"),
    ("[server]\nbogus = 1\n", ":2: unknown key server.bogus"),
    ("[server\n", ":1: expected [section]"),
])
def test_ini_errors_name_the_line(tmp_path, text, needle):
    ini = tmp_path / "t.ini"
    ini.write_text(text)
    rc, out, err = run_tickgate(["--config=%s" % ini])
    assert rc == 2 and str(ini) + needle in err, err


def test_ini_quoted_values_are_unquoted(tmp_path, gateway):
    ini = tmp_path / "t.ini"
    ini.write_text('[server]\nws_path = "/stream"\n[auth]\njwt_secret = \'%s\'\n' % SECRET)
    gw = gateway("--config=%s" % ini)
    r = api(gw, "POST", "/api/publish", token=mint("p", "publisher"),
            body={"updates": [{"symbol": "AAPL", "price": 1.5}]})
    assert r.status == 200, r  # the secret was read without its quotes
    from conftest import http_json
    assert http_json(gw, "GET", "/stream").status != 404


def test_missing_config_file_says_why():
    rc, out, err = run_tickgate(["--config=/nonexistent/t.ini"])
    assert rc == 2 and "No such file or directory" in err, err


def test_missing_users_file_has_no_line_minus_one():
    rc, out, err = run_tickgate(["--server.listen=127.0.0.1:0", "--auth.users_file=/nonexistent/users.json"])
    assert rc == 2 and "auth.users_file" in err and "/nonexistent/users.json" in err, err
    assert "line -1" not in err and "No such file" in err, err


def test_space_instead_of_equals_is_explained():
    rc, out, err = run_tickgate(["--server.listen", "127.0.0.1:1"])
    assert rc == 2 and "--server.listen=VALUE" in err, err
    rc, out, err = run_tickgate(["--auth.jwt_secret", "s3cr3t-value"])
    assert rc == 2 and "s3cr3t-value" not in err, err


def start_logged(gw):
    """The server's start-up lines on stderr, once the last of them (every
    start-up warning is logged before it) has been read."""
    wait_log(gw, r" worker\(s\); ws ")
    return gw.stderr


def test_start_warns_when_tokens_cannot_be_verified(gateway, tmp_path):
    err = start_logged(gateway())
    assert re.search(r"warn auth: .*every JWT will be refused", err), err
    assert "every JWT will be refused" not in start_logged(gateway(SECRET_FLAG))


def test_start_warns_about_a_demo_directory_without_index(gateway, tmp_path):
    err = start_logged(gateway("--server.static_dir=%s" % tmp_path))
    assert "has no index.html" in err, err


def test_unknown_user_gets_the_same_status_on_api_and_handshake(gateway, jclients, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": [{"id": "feed-1", "role": "publisher"}]}))
    gw = gateway(SECRET_FLAG, "--auth.users_file=%s" % users)
    stranger = mint("stranger", "publisher")
    r = api(gw, "POST", "/api/publish", token=stranger, body={"updates": [{"symbol": "AAPL", "price": 1.5}]})
    h = jclients.handshake(gw, token=stranger)
    assert r.status == h.status == 403, (r, h)
    assert r.json()["message"] == "unknown_user" and h.json()["message"] == "unknown_user", (r.json(), h.json())
    ok = api(gw, "POST", "/api/publish", token=mint("feed-1", "publisher"),
             body={"updates": [{"symbol": "AAPL", "price": 1.5}]})
    assert ok.status == 200, ok


def test_front_matter():
    lic = open(os.path.join(ROOT, "LICENSE")).read()
    assert "MIT License" in lic and "tickgate authors" in lic
    readme = open(os.path.join(ROOT, "README.md")).read()
    intro = readme.split("\n## ")[0]
    assert "paper trading" in intro and "analysis" in intro
    for word in ("auth.jwt_secret_file", "python3-websockets", "curl", "openssl", "make run ARGS=",
                 "terminals", "docs/operations.md"):
        assert word in readme, word
    proto = open(os.path.join(ROOT, "docs", "protocol.md")).read()
    assert '"api_keys"' in proto and "users_file" in proto

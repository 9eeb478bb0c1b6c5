#!/usr/bin/env python3
"""Bootstraps a tenant and its SCIM connection through scim-edge's admin API (stdlib only).

Idempotent: PUT the tenant (201 created / 200 unchanged); then keep the saved connection if the
file exists and the server still has a connection with that URL, otherwise generate one (POST,
which replaces a connection whose token was lost) and save it with mode 0600.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def call(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", required=True, help="e.g. http://127.0.0.1:10000")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", default=None, help="display name (default: the tenant id, capitalised)")
    p.add_argument("--admin-token-file", required=True)
    p.add_argument("--save", required=True, help="file that keeps the connection (url, token)")
    a = p.parse_args()
    with open(a.admin_token_file) as f:
        token = f.read().strip()
    t = a.tenant

    # "admin" counts only when the tenant is created (an update naming an unknown one is a 400).
    exists, _ = call(a.base, token, "GET", f"/admin/v1/tenants/{t}")
    tenant = {"name": a.name or t.capitalize(), "plan": "advanced"}
    if exists != 200:
        tenant["admin"] = {"userName": f"admin@{t}.example", "displayName": "Demo Administrator"}
    status, body = call(a.base, token, "PUT", f"/admin/v1/tenants/{t}", tenant)
    if status not in (200, 201):
        sys.exit(f"bootstrap: PUT /admin/v1/tenants/{t} answered {status}: {body}")
    print(f"bootstrap: tenant {t!r} {'created' if status == 201 else 'already there'}", file=sys.stderr)

    saved = None
    if os.path.exists(a.save):
        try:
            with open(a.save) as f:
                saved = json.load(f)
        except ValueError:
            saved = None
    status, current = call(a.base, token, "GET", f"/admin/v1/tenants/{t}/scim")
    if status not in (200, 404):
        sys.exit(f"bootstrap: GET /admin/v1/tenants/{t}/scim answered {status}: {current}")
    if (isinstance(saved, dict) and status == 200 and isinstance(current, dict)
            and current.get("url") == saved.get("url")):
        print(f"bootstrap: keeping the SCIM connection saved in {a.save}", file=sys.stderr)
        return

    status, conn = call(a.base, token, "POST", f"/admin/v1/tenants/{t}/scim")
    if status not in (200, 201) or not isinstance(conn, dict) or "token" not in conn:
        sys.exit(f"bootstrap: POST /admin/v1/tenants/{t}/scim answered {status}: {conn}")
    fd = os.open(a.save, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(conn, f, indent=2)
    os.chmod(a.save, 0o600)
    print(f"bootstrap: generated a SCIM connection, saved in {a.save}", file=sys.stderr)


if __name__ == "__main__":
    main()

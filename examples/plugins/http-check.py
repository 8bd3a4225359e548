#!/usr/bin/env python3
"""http-check: a Baton plugin that checks that a URL answers as expected.

Use it as `uses: http-check` on an agent started with `--plugins` naming this folder:

    check:
      uses: http-check
      with:
        url: https://example.com/       # required
        expect_status: 200              # default 200
        contains: Example Domain        # optional: text the body must contain
        attempts: 3                     # default 1: tries before giving up
        interval: 2                     # default 2: seconds between tries
        timeout: 10                     # default 10: seconds per request

It reads the call from stdin (see docs/plugins.md), logs each try on stdout, writes the
outputs `status` and `elapsed_ms` to $BATON_OUTPUT, and exits 0 when the check passed,
1 when it failed, and 2 when `with` is wrong. Python 3 standard library only.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


class BadArguments(Exception):
    pass


def number(args, key, default, lowest):
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < lowest:
        raise BadArguments(f"`{key}` must be a number of at least {lowest}, not {value!r}")
    return value


def settings(args):
    if not isinstance(args, dict):
        raise BadArguments("`with` must be a mapping")
    unknown = set(args) - {"url", "expect_status", "contains", "attempts", "interval", "timeout"}
    if unknown:
        raise BadArguments(f"unknown argument(s): {', '.join(sorted(unknown))}")
    url = args.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise BadArguments("`url` must be an http:// or https:// URL")
    contains = args.get("contains")
    if contains is not None and not isinstance(contains, str):
        raise BadArguments("`contains` must be a string")
    return {
        "url": url,
        "expect_status": int(number(args, "expect_status", 200, 100)),
        "contains": contains,
        "attempts": int(number(args, "attempts", 1, 1)),
        "interval": number(args, "interval", 2, 0),
        "timeout": number(args, "timeout", 10, 0.001),
    }


def fetch(url, timeout):
    """Returns (status, body text); HTTP error statuses are answers, not failures."""
    request = urllib.request.Request(url, headers={"User-Agent": "baton-http-check"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def check_once(s):
    """One try: (passed, status or None, elapsed ms, what happened)."""
    started = time.monotonic()
    try:
        status, body = fetch(s["url"], s["timeout"])
    except (urllib.error.URLError, OSError) as e:
        elapsed = round((time.monotonic() - started) * 1000)
        reason = getattr(e, "reason", e)
        return False, None, elapsed, f"no answer: {reason}"
    elapsed = round((time.monotonic() - started) * 1000)
    if status != s["expect_status"]:
        return False, status, elapsed, f"got {status}, expected {s['expect_status']}"
    if s["contains"] is not None and s["contains"] not in body:
        return False, status, elapsed, f"got {status}, but the body lacks {s['contains']!r}"
    return True, status, elapsed, str(status)


def write_outputs(values):
    path = os.environ.get("BATON_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for key, value in values.items():
            out.write(f"{key}={value}\n")


def main():
    call = json.load(sys.stdin)
    node = call.get("node", "?")
    try:
        s = settings(call.get("with") or {})
    except BadArguments as e:
        print(f"http-check: {e}", file=sys.stderr)
        return 2
    for attempt in range(1, s["attempts"] + 1):
        passed, status, elapsed, what = check_once(s)
        print(f"[{node}] try {attempt}/{s['attempts']}: GET {s['url']} -> {what} in {elapsed} ms",
              flush=True)
        if passed:
            write_outputs({"status": status, "elapsed_ms": elapsed})
            return 0
        if attempt < s["attempts"]:
            time.sleep(s["interval"])
    if status is not None:
        write_outputs({"status": status, "elapsed_ms": elapsed})
    print(f"http-check: {s['url']} failed the check", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

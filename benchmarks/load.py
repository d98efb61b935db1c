"""Load test: concurrent signed-in sessions across the pages of a real ``streamlit run app.py`` server.

``python -m benchmarks.load [--members 50000] [--sessions 20] [--rounds 3]``

* Builds (once) the demo warehouse of ``--members`` members in ``benchmarks/data/``.
* Starts ``streamlit run app.py`` on a free loopback port with sign-in configured (an ``[auth]`` section in a
  scratch secrets file: no provider is ever called) and a scratch app-state database holding the users.
* Each session is a signed-in user (roles spread over the six; two marketers restricted to a region): its
  ``_streamlit_user`` cookie is signed with the configured cookie secret exactly as Streamlit signs it after an
  OpenID Connect sign-in, so the server treats it as that signed-in identity (roles come from the users table).
* Sessions speak Streamlit's own WebSocket protocol (the browser's): ``rerun_script`` with the page's URL path,
  then wait for ``script_finished``. All sessions run at once; each visits every page its role opens,
  ``--rounds`` times. A page time is from the request to the end of the run; a page that shows an exception, a
  "could not be drawn" line or a refusal counts as an error.

Prints the page times (median, 95th percentile, max; first round = cold caches, later rounds = warm), errors, and
the server's peak memory, and writes them to ``benchmarks/results/load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = PROJECT_ROOT / "benchmarks" / "data"
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
COOKIE_SECRET = "memberlens-load-test-cookie-secret-0123456789"
ROLE_CYCLE = ("marketer", "membership_manager", "analyst", "executive", "admin", "privacy_officer")
PAGE_SECONDS = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def warehouse(members: int) -> str:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"warehouse_{members}.duckdb"
    if not path.exists():
        from analytics.synthetic import DemoSpec, generate_warehouse

        generate_warehouse(f"duckdb:///{path}", DemoSpec(members=members))
    return f"duckdb:///{path}"


def users(count: int) -> list[tuple[str, str, dict]]:
    """(identity, role, restriction) for each session."""
    found = []
    for i in range(count):
        role = ROLE_CYCLE[i % len(ROLE_CYCLE)]
        restriction = {"regions": ["South China"]} if role == "marketer" and i % 12 == 0 else {}
        found.append((f"user{i:02d}@example.com", role, restriction))
    return found


def signed_cookie(identity: str, origin: str) -> str:
    from streamlit.web.server.starlette.starlette_app_utils import create_signed_value

    payload = {"email": identity, "name": identity.split("@")[0], "is_logged_in": True, "origin": origin,
               "provider": "default"}
    return create_signed_value(COOKIE_SECRET, "_streamlit_user", json.dumps(payload)).decode()


class Session:
    """One browser tab, speaking Streamlit's WebSocket protocol."""

    def __init__(self, base: str, identity: str, xsrf: str) -> None:
        from websockets.sync.client import connect

        origin = base
        cookie = f"_streamlit_xsrf={xsrf}; _streamlit_user={signed_cookie(identity, origin)}"
        self.ws = connect(base.replace("http", "ws") + "/_stcore/stream", subprotocols=["streamlit", xsrf],
                          additional_headers={"Cookie": cookie, "Origin": origin}, max_size=None,
                          open_timeout=60)

    def open(self, page: str) -> tuple[float, list[str]]:
        """Run ``page`` (its URL path); (seconds until the run finished, problems seen on the page)."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = BackMsg()
        message.rerun_script.query_string = ""
        message.rerun_script.page_name = page
        started = time.perf_counter()
        self.ws.send(message.SerializeToString())
        problems: list[str] = []
        deadline = started + PAGE_SECONDS
        while True:
            data = self.ws.recv(timeout=max(deadline - time.perf_counter(), 1))
            forward = ForwardMsg.FromString(data)
            kind = forward.WhichOneof("type")
            if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                element = forward.delta.new_element
                which = element.WhichOneof("type")
                if which == "exception":
                    problems.append(f"exception: {element.exception.message[:200]}")
                elif which == "alert" and element.alert.format == 1:  # an st.error
                    body = element.alert.body
                    if "could not be drawn" in body or "does not allow" in body or "cannot" in body:
                        problems.append(f"error: {body[:200]}")
            elif kind == "page_not_found":
                problems.append(f"page not found: {page}")
            elif kind == "script_finished" and forward.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return time.perf_counter() - started, problems

    def close(self) -> None:
        self.ws.close()


def pages_for(role: str, restricted: bool) -> list[str]:
    """The URL paths of the pages the role opens, in app.py's order; the first is the home page, served at ``/``
    (its own path is not a URL)."""
    from analytics.access import PAGES, Principal, may_open

    who = Principal("x@example.com", role=role, regions=("R",) if restricted else ())
    keys = [key for key in PAGES if may_open(who, key)]
    return ["", *keys[1:]]


def peak_rss(pid: int) -> float:
    """The process's peak resident memory (GiB), from /proc (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    url = warehouse(args.members)
    scratch = Path(tempfile.mkdtemp(prefix="memberlens_load_"))
    secrets = scratch / "secrets.toml"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    secrets.write_text(f'[auth]\nredirect_uri = "{base}/oauth2callback"\ncookie_secret = "{COOKIE_SECRET}"\n'
                       'client_id = "memberlens-load"\nclient_secret = "unused"\n'
                       'server_metadata_url = "https://login.example.com/.well-known/openid-configuration"\n')
    state_url = f"sqlite:///{scratch}/state.sqlite"
    from analytics.access import local_principal
    from analytics.storage.appstate import open_state
    from analytics.storage.users import grant

    state = open_state(state_url)
    people = users(args.sessions)
    for identity, role, restriction in people:
        grant(state, local_principal(), identity, role, **restriction)
    state.dispose()

    env = {**os.environ, "MEMBERLENS_WAREHOUSE_URL": url, "MEMBERLENS_STATE_URL": state_url,
           "MEMBERLENS_DATA_DIR": str(scratch / "data"), "STREAMLIT_SECRETS_FILES": str(secrets)}
    log = (scratch / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start: " + (scratch / "server.log").read_text()[-2000:]
                                     ) from None
                time.sleep(0.3)
        # the double-submit XSRF token a browser keeps in its cookie and repeats in the WebSocket subprotocol
        from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

        xsrf = generate_xsrf_token_string()

        timings: list[dict] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(people))

        def visit(identity: str, role: str, restriction: dict, seed: int) -> None:
            pages = pages_for(role, bool(restriction))
            rng = random.Random(seed)
            session = Session(base, identity, xsrf)
            try:
                barrier.wait(timeout=120)
                for round_no in range(args.rounds):
                    order = pages[:]
                    rng.shuffle(order)
                    for page in order:
                        seconds, problems = session.open(page)
                        with lock:
                            timings.append({"user": identity, "role": role, "page": page, "round": round_no,
                                            "seconds": seconds, "problems": problems})
            finally:
                session.close()

        began = time.perf_counter()
        threads = [threading.Thread(target=visit, args=(*person, i)) for i, person in enumerate(people)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        memory = peak_rss(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    def summary(rows: list[dict]) -> dict:
        values = sorted(r["seconds"] for r in rows)
        if not values:
            return {}
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return {"page_loads": len(values), "median_s": round(statistics.median(values), 3), "p95_s": round(p95, 3),
                "max_s": round(values[-1], 3)}

    errors = [r for r in timings if r["problems"]]
    per_page = {page: summary([r for r in timings if r["page"] == page and r["round"] > 0])
                for page in sorted({r["page"] for r in timings})}
    result = {"members": args.members, "sessions": args.sessions, "rounds": args.rounds, "wall_s": round(wall, 1),
              "all": summary(timings), "cold (first round)": summary([r for r in timings if r["round"] == 0]),
              "warm (later rounds)": summary([r for r in timings if r["round"] > 0]), "per_page_warm": per_page,
              "errors": len(errors), "error_examples": [r["problems"] for r in errors[:5]],
              "server_peak_rss_gib": round(memory, 2)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps({**result, "timings": timings}, indent=1))
    print(json.dumps(result, indent=1))
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())

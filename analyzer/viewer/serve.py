"""``wan-analyze view STORE --serve``: the viewer page from a local server that reads the store on demand.

The server listens on 127.0.0.1 only and answers only requests whose Host header names
it (a web page elsewhere cannot reach it through DNS rebinding). The page is the same as
the inline one; its data comes from JSON endpoints, each computed when first asked for
and kept in a small cache: every step and every layer entry at the latent grid's full
resolution (maps still sent as 8 bits with their scale).

- ``/`` the page; ``/api/meta`` what it lays itself out with;
- ``/api/slice?branch=&step=&layer=`` the words' maps of a step position (or ``mean``) and a
  layer entry (or ``mean``);
- ``/api/shares?branch=`` each word's share per step; ``/api/frame?i=`` a frame as JPEG.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from analyzer.errors import StepError
from analyzer.statistics import layer_mean, membership, reduce_step
from analyzer.viewer.data import MEAN, base_meta, frame_jpeg, open_branches, slice_payload, word_groups, word_shares
from analyzer.viewer.page import render_page, script_json

CACHE_ENTRIES = 64


class ViewerData:
    """The store, opened once, and what the endpoints compute from it (each computed once, then cached)."""

    def __init__(self, location, storage_options=None):
        self.plans = {p.branch: p for p in open_branches(location, storage_options)}
        self.meta = base_meta(list(self.plans.values()))
        self.meta["reductions"] = []
        self.meta["available"] = None
        self.lock = threading.Lock()
        self.cache: OrderedDict = OrderedDict()
        self.key_locks: dict = {}
        self.members = {b: membership(len(p.view.tokens), word_groups(p.view)) for b, p in self.plans.items()}

    def _cached(self, key, compute):
        """``compute()`` once per key (others asking for it wait); different keys are computed side by side."""
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
            key_lock = self.key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self.lock:
                if key in self.cache:
                    return self.cache[key]
            try:
                value = compute()
            finally:
                with self.lock:
                    self.key_locks.pop(key, None)  # a failed computation is tried again by the next request
            with self.lock:
                self.cache[key] = value
                while len(self.cache) > CACHE_ENTRIES:
                    self.cache.popitem(last=False)
            return value

    def _plan(self, branch: str):
        if branch not in self.plans:
            raise KeyError(f"no branch {branch!r}")
        return self.plans[branch]

    def _step_attention(self, branch: str, step, layer) -> np.ndarray:
        """(Q, T) float32 attention of one step: the layer mean when ``layer`` is MEAN, else that layer entry."""
        view = self._plan(branch).view
        if layer == MEAN:
            raw = view.read_raw(step, list(range(len(view.layer_blocks))))
            return reduce_step(view, raw).attention
        return layer_mean(view.read_raw(step, [layer]).attention)[0]

    def slice(self, branch: str, step: str, layer: str) -> bytes:
        plan = self._plan(branch)
        layer_key = MEAN if layer == MEAN else int(layer)
        if layer_key != MEAN and not 0 <= layer_key < len(plan.view.layer_blocks):
            raise KeyError(f"no layer entry {layer}")

        def compute():
            if step == MEAN:
                total, used = None, 0
                for s in plan.steps:
                    try:
                        attention = self._step_attention(branch, s, layer_key)
                    except StepError:
                        continue
                    total = attention.copy() if total is None else total + attention
                    used += 1
                if total is None:
                    raise KeyError("no usable step")
                return json.dumps(slice_payload(total / used, plan.view, self.members[branch])).encode()
            position = int(step)
            found = [s for s in plan.steps if s.position == position]
            if not found:
                raise KeyError(f"no complete step at position {step}")
            attention = self._step_attention(branch, found[0], layer_key)
            return json.dumps(slice_payload(attention, plan.view, self.members[branch])).encode()

        return self._cached(("slice", branch, step, str(layer_key)), compute)

    def shares(self, branch: str) -> bytes:
        plan = self._plan(branch)

        def compute():
            rows = []
            for s in plan.steps:
                try:
                    raw = plan.view.read_raw(s, list(range(len(plan.view.layer_blocks))))
                    rows.append(word_shares(reduce_step(plan.view, raw).attention, self.members[branch]))
                except StepError:
                    rows.append(None)
            return json.dumps(rows).encode()

        return self._cached(("shares", branch), compute)

    def frame(self, index: int) -> bytes:
        view = next(iter(self.plans.values())).view
        if not 0 <= index < view.num_video_frames:
            raise KeyError(f"no frame {index}")
        return self._cached(("frame", index), lambda: frame_jpeg(view.read_video_frame(index), None, 90))

    def page(self) -> bytes:
        return render_page({"mode": "serve"}, self.meta["title"], serve=True).encode("utf-8")

    def meta_json(self) -> bytes:
        return script_json(self.meta).encode("ascii")


def make_server(location, *, port: int = 0, storage_options=None) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (``port`` 0: any free port) for the store; call ``serve_forever``."""
    data = ViewerData(location, storage_options)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the command prints the URL and nothing per request
            pass

        def _send(self, status: int, body: bytes, kind: str):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            host = (self.headers.get("Host") or "").lower()
            port_now = self.server.server_address[1]
            if host not in (f"127.0.0.1:{port_now}", f"localhost:{port_now}"):
                self._send(403, b"this server answers only http://127.0.0.1 requests", "text/plain")
                return
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if url.path in ("/", "/index.html"):
                    self._send(200, data.page(), "text/html; charset=utf-8")
                elif url.path == "/api/meta":
                    self._send(200, data.meta_json(), "application/json")
                elif url.path == "/api/slice":
                    body = data.slice(query.get("branch", ""), query.get("step", MEAN), query.get("layer", MEAN))
                    self._send(200, body, "application/json")
                elif url.path == "/api/shares":
                    self._send(200, data.shares(query.get("branch", "")), "application/json")
                elif url.path == "/api/frame":
                    self._send(200, data.frame(int(query.get("i", "-1"))), "image/jpeg")
                else:
                    self._send(404, b"not found", "text/plain")
            except (KeyError, ValueError) as exc:
                self._send(404, str(exc).encode("utf-8", "replace"), "text/plain; charset=utf-8")
            except Exception as exc:  # noqa: BLE001 - a bad chunk, a StoreError: one line to the page, no traceback
                line = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
                self._send(500, line.encode("utf-8", "replace"), "text/plain; charset=utf-8")

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def serve(location, *, port: int = 0, storage_options=None, announce=print) -> None:
    """Serve the viewer of the store until interrupted; ``announce`` gets the URL."""
    server = make_server(location, port=port, storage_options=storage_options)
    try:
        announce(f"http://127.0.0.1:{server.server_address[1]}/")
        server.serve_forever()
    finally:
        server.server_close()

"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1 that injects faults, for backend tests.

Each request's document carries `key: <name>`; `plans[name]` lists the behaviour of each successive
attempt for that key (the last one repeats): ok, slow (sleep past the client timeout, then answer), 500,
503, 429, 400, badjson (answer text that is not JSON), oot (out-of-taxonomy labels), envelope (HTTP 200
with a broken body), drop (close the connection without a reply), short (fewer choices than asked), drip (a
good answer sent a few bytes every `drip_s`, so no single read times out but the whole reply is slow).
The server records every request body and header and the number of attempts per key.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conf_profile.taxonomy import Taxonomy

_KEY = re.compile(r"key: (\S+)")


def good_answer(taxonomy: Taxonomy, k: int = 0) -> dict[str, Any]:
    """A valid answer; `k` varies the labels so that samples differ."""
    out = {}
    for a in taxonomy.attributes:
        cls = a.classes[k % len(a.classes)]
        out[a.name] = {"label": [cls] if a.is_multi else cls, "confidence": 4, "rationale": f"server {k}"}
    return out


class FaultServer:
    def __init__(self, taxonomy: Taxonomy, plans: dict[str, list[str]], slow_s: float = 1.0,
                 drip_s: float = 0.2, drip_bytes: int = 16):
        self.taxonomy = taxonomy
        self.plans = plans
        self.slow_s = slow_s
        self.drip_s = drip_s
        self.drip_bytes = drip_bytes
        self.attempts: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _behaviour(self, body: dict) -> tuple[str, str]:
        text = " ".join(m.get("content", "") for m in body.get("messages", []))
        m = _KEY.search(text)
        key = m.group(1) if m else "?"
        with self._lock:
            n = self.attempts[key]
            self.attempts[key] += 1
        plan = self.plans.get(key, ["ok"])
        return key, plan[min(n, len(plan) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, code: int, payload: bytes, ctype: str = "application/json", drip: bool = False) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if not drip:
                        self.wfile.write(payload)
                        return
                    self.wfile.flush()
                    for i in range(0, len(payload), server.drip_bytes):
                        time.sleep(server.drip_s)
                        self.wfile.write(payload[i:i + server.drip_bytes])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to do

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}')
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server._lock:
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict) -> None:
                _key, what = server._behaviour(body)
                n = int(body.get("n", 1))
                if what == "slow":
                    time.sleep(server.slow_s)
                    what = "ok"
                if what in ("500", "503", "429", "400"):
                    self._send(int(what), json.dumps({"error": {"message": f"injected {what}"}}).encode())
                    return
                if what == "envelope":
                    self._send(200, b'{"choices": [{"message": ')
                    return
                if what == "drop":
                    self.close_connection = True
                    return
                contents = []
                for k in range(1 if what == "short" else n):
                    if what == "badjson":
                        contents.append("I think this user likes cats. {label: maybe}")
                    elif what == "oot":
                        ans = good_answer(server.taxonomy, k)
                        ans["gender"]["label"] = "attack_helicopter"
                        ans["interests"]["label"] = ["gaming", "crypto_scams"]
                        contents.append(json.dumps(ans))
                    else:
                        contents.append(json.dumps(good_answer(server.taxonomy, k)))
                payload = {
                    "id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
                                for i, c in enumerate(contents)],
                }
                self._send(200, json.dumps(payload).encode(), drip=what == "drip")

        return Handler

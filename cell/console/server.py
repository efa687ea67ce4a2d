"""The operator console's web server (aiohttp), ROS-free: the page, one WebSocket per browser
(camera and energy frames out, pointer and frame acknowledgements in) and a small JSON API for
the buttons. The console node owns the ROS side and hands it a ConsoleBridge.

Frames are never queued: each browser gets the newest frame once it has drawn the previous one,
and acknowledges every frame it draws, which gives the image-to-browser latency (from the node's
receipt of the frame to the acknowledgement's arrival: an upper bound, it includes the ack's trip
back) and the frame rate each browser really shows.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import cv2
import numpy as np
from aiohttp import WSMsgType, web

from cell.console.access import ConsoleAccess, ControlSeat
from cell.console.config import ACTIONS, ConsoleConfig
from cell.console.meters import LatencyMeter, RateMeter
from cell.console.pointer import PointerRejected, parse_pointer

WEB_DIR = Path(__file__).with_name("web")
FRAME_KINDS = ("camera", "energy")
FRAME_HEADER = struct.Struct(">BIHH")   # kind, frame id, width, height; then the JPEG bytes
SERVICE_TIMEOUT_S = 10.0
WARN_EVERY_S = 1.0


class ConsoleBridge(Protocol):
    """What the server needs from the ROS side (the console node)."""

    def point(self, uv: tuple[float, float] | None) -> None: ...            # None = release
    def call(self, action: str) -> concurrent.futures.Future: ...           # -> (ok, message)
    def calibrate(self, clicks: list[tuple[float, float]]) -> concurrent.futures.Future: ...
    def status(self) -> dict[str, Any]: ...
    def log(self, level: str, text: str) -> None: ...


@dataclass
class _Frame:
    id: int
    rgb: np.ndarray
    received: float                       # time.monotonic() at the node's receipt
    jpeg: bytes | None = None


@dataclass
class _Client:
    id: int
    ws: web.WebSocketResponse
    remote: str
    in_flight: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(FRAME_KINDS))  # sent, not yet shown
    last_sent_id: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(FRAME_KINDS))
    shown: RateMeter = field(default_factory=RateMeter)
    latency: LatencyMeter = field(default_factory=LatencyMeter)
    last_sent: float = 0.0
    warned: dict[str, float] = field(default_factory=dict)   # refusal text -> when it was last logged


class ConsoleServer:
    def __init__(self, config: ConsoleConfig, access: ConsoleAccess, bridge: ConsoleBridge):
        if not (WEB_DIR / "index.html").is_file():
            raise FileNotFoundError(f"the console's page is missing from {WEB_DIR}: the package was installed "
                                    "without its data files (setup.py package_data 'cell.console': web/*)")
        self.config = config
        self.access = access
        self.bridge = bridge
        self.seat = ControlSeat()
        self._clients: dict[int, _Client] = {}
        self._frames: dict[str, _Frame | None] = dict.fromkeys(FRAME_KINDS)
        self._frame_ids = 0
        self._received: dict[int, float] = {}        # frame id -> receipt time, for the acks
        self.image_size: tuple[int, int] | None = None
        self._pointing: tuple[float, float] | None = None   # the held pointer last forwarded
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._state_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle (any thread)
    def start(self) -> None:
        """Serve in a thread of its own; raises (e.g. OSError: port in use) if it cannot bind."""
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="console-http", daemon=True)
        self._thread.start()
        ready.result(timeout=30)

    def stop(self) -> None:
        if self._loop is None or not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def offer_frame(self, kind: str, rgb: np.ndarray) -> None:
        """A new frame from ROS (camera or energy heatmap); sent to every browser ready for one."""
        self._frame_ids += 1
        frame = _Frame(self._frame_ids, rgb, time.monotonic())
        if kind == "camera":
            self.image_size = (rgb.shape[1], rgb.shape[0])
        self._received[frame.id] = frame.received
        if len(self._received) > 500:
            for stale in sorted(self._received)[:250]:
                del self._received[stale]
        self._frames[kind] = frame
        if self._loop is not None and self._clients:
            self._loop.call_soon_threadsafe(self._send_frames, kind)

    def stream_stats(self) -> dict[str, Any]:
        """Per browser: frames shown per second and image-to-browser latency (ms)."""
        return {str(c.id): {"role": self.seat.role(c.id), "fps": round(c.shown.rate(), 2),
                            "latency_ms": c.latency.summary_ms()} for c in list(self._clients.values())}

    # ------------------------------------------------------------------ asyncio side
    def _serve(self, ready: concurrent.futures.Future) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except Exception as exc:
            ready.set_exception(exc)
            return
        ready.set_result(True)
        self._state_task = loop.create_task(self._state_loop())
        loop.run_forever()
        loop.close()

    async def _bind(self) -> None:
        app = web.Application(middlewares=[self._token_middleware])
        app.add_routes([web.get("/", self._index), web.get("/ws", self._websocket),
                        web.get("/api/state", self._api_state),
                        web.post("/api/action/{name}", self._api_action),
                        web.post("/api/calibrate", self._api_calibrate),
                        web.static("/static", WEB_DIR)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()

    async def _shutdown(self) -> None:
        if self._state_task is not None:
            self._state_task.cancel()
        for client in list(self._clients.values()):
            await client.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _token_middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        # The page and its static files hold no data; everything else needs the token.
        if request.path == "/" or request.path.startswith("/static/"):
            return await handler(request)
        given = request.headers.get("X-Console-Token") or request.query.get("token")
        if not self.access.allows(given):
            self.bridge.log("warning", f"refused {request.method} {request.path} from {request.remote}: "
                                       f"{'wrong' if given else 'missing'} console token")
            raise web.HTTPForbidden(text="console token required: open the URL the console printed at start-up\n")
        return await handler(request)

    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "index.html")

    async def _api_state(self, _request: web.Request) -> web.Response:
        return web.json_response(self._state())

    def _state(self, client: int | None = None) -> dict[str, Any]:
        state = {"type": "state", **self.bridge.status(), "role": self.config.role,
                 "actions": list(self.config.allowed_actions()),
                 "console": {"connected": self.seat.connected, "holder": self.seat.holder,
                             "token_required": self.access.requires_token},
                 "stream": self.stream_stats(), "pointer_resend_s": self.config.pointer_resend_s}
        if client is not None:
            state["you"] = {"client": client, "seat": self.seat.role(client)}
        return state

    def _refusal(self, client: int | None, action: str) -> str | None:
        if action not in self.config.allowed_actions():
            return f"{action!r} is not available in the {self.config.role} console"
        return self._watcher_refusal(client) if ACTIONS[action] == "control" else None

    def _watcher_refusal(self, client: int | None) -> str | None:
        if client is None or client != self.seat.holder:
            return f"console {client} is watching: console {self.seat.holder} holds control"
        return None

    def _client_id(self, request: web.Request) -> int | None:
        try:
            return int(request.headers.get("X-Console-Client", ""))
        except ValueError:
            return None

    async def _api_action(self, request: web.Request) -> web.Response:
        action, client = request.match_info["name"], self._client_id(request)
        if action not in ACTIONS:
            raise web.HTTPNotFound(text=f"no action {action!r}; actions: {', '.join(ACTIONS)}\n")
        refusal = self._refusal(client, action)
        if refusal:
            self.bridge.log("warning", f"{action} refused: {refusal}")
            return web.json_response({"ok": False, "message": refusal}, status=409)
        ok, message = await self._await(self.bridge.call(action), action)
        return web.json_response({"ok": ok, "message": message})

    async def _api_calibrate(self, request: web.Request) -> web.Response:
        client = self._client_id(request)
        refusal = (self._watcher_refusal(client) if self.config.role == "teleop"
                   else "calibration is part of the teleop console (record_demos)")
        if refusal:
            return web.json_response({"ok": False, "message": refusal}, status=409)
        try:
            clicks = [(float(u), float(v)) for u, v in (await request.json())["clicks"]]
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"ok": False, "message": f"bad calibration request: {exc}"}, status=400)
        ok, message = await self._await(self.bridge.calibrate(clicks), "calibration")
        return web.json_response({"ok": ok, "message": message})

    async def _await(self, future: concurrent.futures.Future, what: str) -> tuple[bool, str]:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), SERVICE_TIMEOUT_S)
        except asyncio.TimeoutError:
            return False, f"{what}: no reply within {SERVICE_TIMEOUT_S:.0f} s"

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=2.0)   # a silent peer (asleep, unplugged) is dropped
        await ws.prepare(request)
        client = _Client(self.seat.join(), ws, str(request.remote))
        self._clients[client.id] = client
        self.bridge.log("info", f"console {client.id} connected from {client.remote} "
                                f"({self.seat.role(client.id)}; {self.seat.connected} open)")
        await ws.send_str(json.dumps(self._state(client.id)))
        for kind in FRAME_KINDS:
            self._send_frames(kind)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        self._on_message(client, msg.data)
                    except Exception as exc:   # one bad message must not drop the operator's page
                        self.bridge.log("error", f"console {client.id}: message not handled: {exc!r}")
        finally:
            del self._clients[client.id]
            if self.seat.leave(client.id) and self.config.role == "teleop":
                self._pointing = None
                self.bridge.point(None)   # the holder is gone: no stale push
            self.bridge.log("info", f"console {client.id} closed; control: console {self.seat.holder}")
        return ws

    def _on_message(self, client: _Client, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            self._warn(client, f"not JSON, ignored: {text[:80]!r}")
            return
        if isinstance(message, dict) and message.get("type") == "shown":
            self._on_shown(client, message)
            return
        if self.config.role != "teleop" or client.id != self.seat.holder:
            self._warn(client, "pointer refused (watching, or a monitor console)")
            return
        try:
            uv = parse_pointer(message, self.image_size)
        except PointerRejected as exc:
            self._warn(client, f"pointer rejected: {exc}")
            return
        if (uv is None) != (self._pointing is None):   # an engagement begins or ends: say so once
            why = f" ({message.get('why')})" if uv is None and isinstance(message.get("why"), str) else ""
            self.bridge.log("info", f"console {client.id}: " + (f"pointer released{why[:40]}" if uv is None else
                                                               f"pointer held at ({uv[0]:.1f}, {uv[1]:.1f}) px"))
        self._pointing = uv
        self.bridge.point(uv)

    def _warn(self, client: _Client, text: str) -> None:
        """A refusal, logged at most once a second per console and reason (a page sends 10 a second)."""
        now = time.monotonic()
        if now - client.warned.get(text, -math.inf) >= WARN_EVERY_S:
            client.warned[text] = now
            self.bridge.log("warning", f"console {client.id}: {text}")

    def _on_shown(self, client: _Client, message: dict) -> None:
        kind, frame_id = message.get("kind"), message.get("id")
        if kind not in FRAME_KINDS or client.in_flight[kind] != frame_id:
            return
        client.in_flight[kind] = None
        if kind == "camera":
            client.shown.tick()
            received = self._received.get(frame_id)
            if received is not None:
                client.latency.add(time.monotonic() - received)
        self._send_frames(kind)

    def _send_frames(self, kind: str) -> None:
        frame = self._frames[kind]
        if frame is None:
            return
        now = time.monotonic()
        for client in list(self._clients.values()):
            ready = client.in_flight[kind] is None and client.ws.prepared and not client.ws.closed
            too_soon = kind == "camera" and now - client.last_sent < 1.0 / self.config.stream_hz
            if not ready or too_soon or client.last_sent_id[kind] == frame.id:
                continue
            if frame.jpeg is None:
                ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame.rgb[:, :, ::-1]),
                                        [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
                frame.jpeg = data.tobytes() if ok else b""
            header = FRAME_HEADER.pack(FRAME_KINDS.index(kind), frame.id, frame.rgb.shape[1], frame.rgb.shape[0])
            client.in_flight[kind] = client.last_sent_id[kind] = frame.id
            if kind == "camera":
                client.last_sent = now
            asyncio.ensure_future(client.ws.send_bytes(header + frame.jpeg))

    async def _state_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0 / self.config.state_hz)
            for client in list(self._clients.values()):
                if not client.ws.closed:
                    try:
                        await client.ws.send_str(json.dumps(self._state(client.id)))
                    except ConnectionError:
                        pass

"""`edgesift fleet serve`: the fleet page. Server-rendered pages (Starlette + Jinja2) and a JSON API beside them,
read-only over the ingest index; no build step, no script, no asset from elsewhere.

Pages: / (the fleet), /vehicles/<id>, /alerts, /targets; the same data at /api/fleet, /api/vehicles/<id>,
/api/alerts, /api/targets; thumbnails at /thumbs/<vehicle>/<frame id>.jpg (read from the MCAP segments).
Bound beyond localhost it requires a token: `Authorization: Bearer <token>`, or HTTP basic auth with the token as
password (what a browser asks for).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.fleet.queries import FleetReader
from agent.ingest.blobs import read_blob

log = logging.getLogger(__name__)

THUMB_WIDTH = 240
_TEMPLATES = Path(__file__).parent / "templates"


def when(t_ns: int | None) -> str:
    if not t_ns:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_ns / 1e9))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenAuth:
    """Bearer token or basic auth (any user, the token as password); compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(dict(scope["headers"]).get(b"authorization", b"")):
            response = PlainTextResponse("authentication required", 401,
                                         headers={"WWW-Authenticate": 'Basic realm="edgesift fleet"'})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(value.strip(), self.token)
        if scheme.lower() == b"basic":
            try:
                _user, _, password = base64.b64decode(value.strip(), validate=True).partition(b":")
            except ValueError:
                return False
            return hmac.compare_digest(password, self.token)
        return False


def make_app(reader: FleetReader, token: str | None = None) -> Starlette:
    templates = Jinja2Templates(directory=str(_TEMPLATES))
    templates.env.filters["when"] = when

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("nav", "")
        return templates.TemplateResponse(request, name, {"now_ns": time.time_ns(), **context}, status_code=status)

    def not_found(request: Request, what: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"{what} not found"}, 404)
        return page(request, "error.html", 404, title="Not found", message=f"{what} is not in the index.")

    def fleet_page(request: Request) -> Response:
        return page(request, "fleet.html", vehicles=reader.fleet(), title="Fleet", nav="fleet")

    def vehicle_page(request: Request) -> Response:
        name = request.path_params["vehicle"]
        data = reader.vehicle(name)
        if data is None:
            return not_found(request, f"vehicle {name!r}")
        return page(request, "vehicle.html", data=data, title=name)

    def alerts_page(request: Request) -> Response:
        return page(request, "alerts.html", alerts=reader.alerts(), title="Alerts", nav="alerts")

    def targets_page(request: Request) -> Response:
        return page(request, "targets.html", targets=reader.targets(), title="Targets", nav="targets")

    def api_vehicle(request: Request) -> Response:
        data = reader.vehicle(request.path_params["vehicle"])
        return JSONResponse(data) if data is not None else not_found(request, "vehicle")

    def thumb(request: Request) -> Response:
        vehicle, frame_id = request.path_params["vehicle"], request.path_params["frame_id"]
        where = reader.frame_location(vehicle, frame_id)
        blob = read_blob(reader.store, where, frame_id) if where and reader.store else None
        image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR) if blob else None
        if image is None:
            return PlainTextResponse("frame not found", 404)
        height = max(1, round(image.shape[0] * THUMB_WIDTH / image.shape[1]))
        _ok, jpeg = cv2.imencode(".jpg", cv2.resize(image, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA),
                                [cv2.IMWRITE_JPEG_QUALITY, 80])
        return Response(jpeg.tobytes(), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    routes = [
        Route("/", fleet_page), Route("/vehicles/{vehicle}", vehicle_page), Route("/alerts", alerts_page),
        Route("/targets", targets_page),
        Route("/api/fleet", lambda r: JSONResponse(reader.fleet())), Route("/api/vehicles/{vehicle}", api_vehicle),
        Route("/api/alerts", lambda r: JSONResponse(reader.alerts())),
        Route("/api/targets", lambda r: JSONResponse(reader.targets())),
        Route("/thumbs/{vehicle}/{frame_id}.jpg", thumb),
    ]  # fmt: skip
    middleware = [Middleware(TokenAuth, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)


def serve(db: str | None, store: Path | None, host: str, port: int, token: str | None) -> None:
    import uvicorn

    from agent.errors import ConfigError

    if not is_loopback(host) and not token:
        raise ConfigError(f"binding the fleet page to {host} needs --token-file (only localhost may go without)")
    reader = FleetReader(db, store)
    try:
        uvicorn.run(make_app(reader, token), host=host, port=port, log_level="warning", access_log=False)
    finally:
        reader.close()

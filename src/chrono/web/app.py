"""The app factory: wires settings, auth, the routers, the docs and the error answers together."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from chrono.core.config import IdentityConfig
from chrono.core.errors import ChronoError
from chrono.db import schema
from chrono.web import api, pages
from chrono.web.auth import Auth, NotAuthenticated
from chrono.web.context import AppContext, require_principal
from chrono.web.settings import WebSettings
from chrono.web.streams import SensorData


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path == "/openapi.json":
        return False
    return "text/html" in request.headers.get("accept", "")


def create_app(settings: WebSettings, identity: IdentityConfig | None = None,
               region: str = "US") -> FastAPI:
    """The web app over ``settings``; the database is migrated to the newest schema first."""
    engine = schema.make_engine(settings.db_url)
    schema.ensure_schema(engine)
    app = FastAPI(title="Chrono", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="The evidence timeline and the sensor pipeline. Every route but "
                  "/health needs `Authorization: Bearer TOKEN` (or a session from /login).")
    app.state.ctx = AppContext(settings=settings, engine=engine,
                               auth=Auth(settings.token, settings.session_hours),
                               sensors=SensorData(settings.pipeline),
                               identity=identity or IdentityConfig(), region=region)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "PUT"],
                           allow_headers=["Authorization", "Content-Type", "X-CSRF-Token"])

    @app.exception_handler(NotAuthenticated)
    async def _unauthenticated(request: Request, _exc: NotAuthenticated) -> Response:
        if _wants_html(request):
            return pages.login_page(request, 401, None, request.url.path)
        return JSONResponse({"detail": "not_authenticated: send Authorization: Bearer TOKEN"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ChronoError)
    async def _chrono_error(request: Request, exc: ChronoError) -> Response:
        # ChronoError texts carry codes, ids and counts only (never values), by contract.
        return _error(request, 400, str(exc))

    @app.exception_handler(ValueError)
    async def _bad_value(request: Request, exc: ValueError) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail),
                      dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Only where and what kind: the rejected input itself may be evidence text.
        problems = [{"loc": list(e.get("loc", ())), "type": e.get("type")}
                    for e in exc.errors()][:10]
        if _wants_html(request):
            return _error(request, 422, "invalid request: " + ", ".join(
                ".".join(map(str, p["loc"])) for p in problems))
        return JSONResponse({"detail": problems}, status_code=422)

    @app.get("/health", tags=["meta"], summary="Liveness (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_principal)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_principal)],
             response_class=HTMLResponse)
    def docs(request: Request) -> HTMLResponse:
        """The API reference rendered here (works offline); Swagger UI is at /docs/swagger."""
        spec = app.openapi()
        routes = [{"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                   "params": [p["name"] for p in op.get("parameters", [])]}
                  for path, ops in spec.get("paths", {}).items() for method, op in ops.items()]
        return pages.render(request, "docs.html", routes=routes)

    @app.get("/docs/swagger", include_in_schema=False,
             dependencies=[Depends(require_principal)])
    def swagger() -> HTMLResponse:
        # Swagger UI's script comes from its CDN: the browser needs internet for this page.
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Chrono API")

    app.include_router(api.router)
    app.include_router(pages.public)
    app.include_router(pages.router)
    return app


def _error(request: Request, status: int, message: str,
           headers: dict[str, str] | None = None) -> Response:
    if _wants_html(request):
        response = pages.render(request, "error.html", status, error=message, back="/")
        if headers:
            response.headers.update(headers)
        return response
    return JSONResponse({"detail": message}, status_code=status, headers=headers)

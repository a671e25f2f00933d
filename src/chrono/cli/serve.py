"""Serve the dashboard and JSON API over the timeline database and the sensor pipeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chrono.cli.errors import friendly_errors
from chrono.core.logging import configure_logging


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    db: Annotated[str | None, typer.Option(
        "--db", help="Timeline database URL (default: $CHRONO_DB, else "
        "sqlite:///DATA_DIR/chrono.db); postgresql://user@host/db also works.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="pipeline.yaml (default: $CHRONO_PIPELINE_CONFIG, else ./pipeline.yaml "
        "if present, else built-in defaults); its data_dir holds buckets, runs and scenarios.")
    ] = None,
    evidence_config: Annotated[Path | None, typer.Option(
        "--evidence-config", help="chrono.yaml whose identity settings and default region "
        "merges and unmerges use (default: $CHRONO_CONFIG, else ./chrono.yaml, else defaults).")
    ] = None,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="Read the access token from this file (default: $CHRONO_TOKEN, "
        "else web.token in pipeline.yaml, else DATA_DIR/state/web_token, created on first "
        "start).")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Allow browser calls from this origin (repeat); CORS is off "
        "unless given.")] = None,
    log_level: Annotated[str, typer.Option(help="Level of the JSON log on stderr.")
    ] = "WARNING",
) -> None:
    """Serve the web dashboard and the JSON API (OpenAPI docs at /docs); every route but
    /health needs the access token."""
    import uvicorn

    from chrono.core.config import load_config
    from chrono.sensors.config import load_pipeline_config
    from chrono.web import WebSettings, create_app
    from chrono.web.settings import resolve_token

    configure_logging(log_level)
    console = Console(stderr=True)
    with friendly_errors():
        pipeline = load_pipeline_config(config)
        evidence = load_config(evidence_config).evidence
        configured = token_file.read_text(encoding="utf-8").strip() if token_file else None
        if configured is None and pipeline.web.token is not None:
            configured = pipeline.web.token.get_secret_value()
        token = resolve_token(pipeline.data_path, configured)
        url = db or os.environ.get("CHRONO_DB") or (
            f"sqlite:///{(pipeline.data_path / 'chrono.db').resolve()}")
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        settings = WebSettings(db_url=url, pipeline=pipeline, token=token.value,
                               cors_origins=tuple(cors_origin or ()))
        app = create_app(settings, evidence.identity, evidence.default_region)
    if token.generated:
        # Printed once, when it is made; later starts read the same token from the file.
        console.print(f"[bold]access token[/] (stored in {token.path}): {token.value}")
    else:
        console.print(f"access token from {token.source}"
                      + (f" ({token.path})" if token.path else ""))
    console.print(f"serving on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False)

"""What every request handler shares: the engine, auth, sensor data and identity settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.engine import Engine

from chrono.core.config import IdentityConfig
from chrono.evidence.corrections import Correction
from chrono.web import timeline
from chrono.web.auth import Auth, Principal
from chrono.web.settings import WebSettings
from chrono.web.streams import SensorData


@dataclass
class AppContext:
    settings: WebSettings
    engine: Engine
    auth: Auth
    sensors: SensorData
    identity: IdentityConfig
    region: str

    def all_runs(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            evidence = timeline.evidence_runs(conn)
        return {"evidence": evidence, "sensor": self.sensors.runs(),
                "executions": [e.as_dict() for e in self.sensors.store().executions(200)]}

    def find_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            found = timeline.evidence_run(conn, run_id)
        return found if found is not None else self.sensors.run(run_id)

    def correction_result(self, c: Correction, entity: str) -> dict[str, Any]:
        return {"correction_id": c.correction_id, "at": timeline.iso(c.at), "by": c.by_user,
                "entity": entity, "action": c.action, "target_ids": list(c.target_ids),
                "identifier_groups": c.identifier_groups}

    def scenario_setting(self) -> dict[str, Any]:
        s = self.sensors.store().get()
        return {"active": list(s.active), "set_by": s.set_by, "set_at": s.set_at.isoformat(),
                "setting_id": s.setting_id}

    def scenario_history(self, limit: int) -> list[dict[str, Any]]:
        return [{"setting_id": s.setting_id, "active": list(s.active), "set_by": s.set_by,
                 "set_at": s.set_at.isoformat()} for s in self.sensors.store().history(limit)]


def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def require_principal(request: Request) -> Principal:
    ctx: AppContext = request.app.state.ctx
    return ctx.auth.require(request)

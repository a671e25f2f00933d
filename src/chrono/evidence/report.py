"""Run report: ``report.json`` and ``report.html`` in ARTIFACT_DIR.

Every inventoried file (and every file found inside one) appears once with its outcome:
processed, skipped, duplicate or failed, plus a reason code. The counts always add up:
``inputs == processed + skipped + duplicate + failed``. Messages are reason codes and bounded
details from the artifact; file paths are shown because finding the file is the point.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from chrono.core.steps import RunLedger
from chrono.evidence.context import EvidenceRun

OUTCOMES = ("processed", "skipped", "duplicate", "failed")


def build_report(run: EvidenceRun, ledger: RunLedger) -> dict[str, Any]:
    entries = run.state.get("entries", [])
    outcomes = run.state.get("outcomes", {})
    files = []
    for e in entries:
        o = outcomes.get(e.file_id)
        files.append({
            "file_id": e.file_id, "path": e.path, "sha256": e.sha256, "size": e.size,
            "kind": e.kind, "depth": e.depth, "parent_id": e.parent_id,
            "outcome": o.outcome if o else "not_run", "reason": o.reason if o else None,
        })
    by_outcome = Counter(f["outcome"] for f in files)
    counts = {"inputs": len(files), **{k: by_outcome.get(k, 0) for k in OUTCOMES}}
    if by_outcome.get("not_run"):
        counts["not_run"] = by_outcome["not_run"]
    reasons = Counter(f["reason"] for f in files if f["outcome"] == "failed")
    run.state["report_counts"] = counts
    return {
        **ledger.to_dict(),
        "source_dir": str(run.source_dir),
        "artifact_dir": str(run.artifact_dir),
        "counts": counts,
        "failures_by_reason": dict(sorted(reasons.items(), key=lambda kv: str(kv[0]))),
        "files": files,
    }


def write_report(run: EvidenceRun, ledger: RunLedger) -> dict[str, Any]:
    report = build_report(run, ledger)
    run.bucket.put_json("report.json", report)
    run.bucket.put_bytes("report.html", render_html(report).encode("utf-8"))
    return report


def render_html(report: dict[str, Any]) -> str:
    esc = html.escape
    counts = "".join(
        f"<div class=card><b>{esc(str(v))}</b><span>{esc(k)}</span></div>"
        for k, v in report["counts"].items()
    )
    steps = "".join(
        f"<tr><td>{esc(s['name'])}</td><td>{s['seconds']:.2f}s</td>"
        f"<td>{esc(', '.join(f'{k}={v}' for k, v in s['counts'].items()))}</td></tr>"
        for s in report["steps"]
    )
    rows = "".join(
        f"<tr class='{esc(f['outcome'])}'><td>{esc(f['path'])}</td><td>{esc(f['kind'])}</td>"
        f"<td>{f['size']}</td><td>{esc(f['outcome'])}</td><td>{esc(f['reason'] or '')}</td></tr>"
        for f in report["files"]
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Chrono run {esc(report['run_id'])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}
.card{{display:inline-block;padding:.6em 1em;margin:.2em;border:1px solid #ccc;border-radius:6px}}
.card b{{display:block;font-size:1.5em}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #eee;padding:3px 6px;text-align:left}}
tr.failed{{background:#fde8e8}} tr.duplicate{{color:#777}} tr.skipped{{color:#557}}
input{{margin:1em 0;padding:4px;width:20em}}</style></head><body>
<h1>Chrono evidence run</h1>
<p>Run <code>{esc(report['run_id'])}</code>: {esc(report['status'])},
started {esc(report['started_at'])}, finished {esc(str(report['finished_at']))}</p>
<div>{counts}</div>
<h2>Steps</h2><table><tr><th>step</th><th>time</th><th>counts</th></tr>{steps}</table>
<h2>Files</h2><input id=q placeholder="filter by path, kind, outcome or reason" oninput="
for(const r of document.querySelectorAll('#files tr.f'))
r.hidden=!r.textContent.includes(this.value)">
<table id=files><tr><th>path</th><th>kind</th><th>bytes</th><th>outcome</th><th>reason</th></tr>
{rows.replace("<tr class='", "<tr class='f ")}</table></body></html>"""

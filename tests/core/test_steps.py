from typing import Any

import pytest

from chrono.core.errors import ConfigError
from chrono.core.steps import Pipeline, Step


def test_steps_run_in_pipeline_order_and_report_counts() -> None:
    p: Pipeline[list[str]] = Pipeline("t")
    for name in ("a", "b", "c"):
        p.register(Step(name, lambda ctx, n=name: ctx.append(n) or {"n": 1}, (), (), ""))
    seen: list[str] = []
    records = p.run(seen, ["c", "a"])
    assert seen == ["a", "c"]
    assert [r.name for r in records] == ["a", "c"]
    assert records[0].counts == {"n": 1}


def test_duplicate_and_unknown_steps_are_errors() -> None:
    p: Pipeline[Any] = Pipeline("t")
    p.register(Step("a", lambda ctx: {}, (), (), ""))
    with pytest.raises(ValueError, match="twice"):
        p.register(Step("a", lambda ctx: {}, (), (), ""))
    with pytest.raises(ConfigError, match="unknown step"):
        p.select(["zzz"])

"""Shared checks of the subcommand tests (test_commands_*.py): ``evaluate --format json`` and the
provenance every written file carries."""

from __future__ import annotations

import json

from .conftest import invoke, ok


def evaluate_json(*args) -> dict:
    result = ok(invoke("evaluate", *args, "--format", "json"), data=True)
    assert result.stderr == ""
    return json.loads(result.stdout)


def check_provenance(attrs: dict, subcommand: str, inputs: list) -> dict:
    prov = attrs["provenance"]
    assert prov["subcommand"] == subcommand
    assert [i["path"] for i in prov["inputs"]] == [str(p) for p in inputs]
    for entry, path in zip(prov["inputs"], inputs):
        assert entry["size"] == path.stat().st_size
        assert len(entry["sha256_first_mib"]) == 64
    assert prov["created_utc"].endswith("Z") and prov["relcli_version"]
    return prov["parameters"]

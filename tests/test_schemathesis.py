"""schemathesis (property-based, from /openapi.json) against the real collector process:
no 5xx and no response that breaks the documented schema. Bounded: a few examples per
operation, well under a minute."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from helpers import missing
from service_support import collector, spec_dict, write_reference

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


def _st() -> str:
    found = shutil.which("st") or str(Path(sys.executable).with_name("st"))
    if not Path(found).exists():
        missing("schemathesis is not installed: pip install 'schemathesis>=4'")
    return found


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    st = _st()
    reference = write_reference(tmp_path)
    with collector(tmp_path, env={"MODELMETER_LOG_LEVEL": "warning"}) as proc:
        put = httpx.put(f"{proc.url}/v1/models/m1", content=orjson.dumps(spec_dict(str(reference))),
                        headers={"content-type": "application/json"})  # fmt: skip
        assert put.status_code == 201, put.text
        result = subprocess.run(
            [
                st, "run", f"{proc.url}/openapi.json",
                "--checks", CHECKS,
                "--phases", "examples,coverage,fuzzing,stateful",
                "--max-examples", "15",
                "--seed", "7",
                "--max-time", "30",
                "--workers", "1",
                "--no-color",
                "--generation-database", "none",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        assert "passed" in output
        assert proc.alive(), proc.log()

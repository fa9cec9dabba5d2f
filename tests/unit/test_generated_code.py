"""Generated code must be exactly what the protos produce today."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen_protos.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_notices_an_edited_generated_file(tmp_path: Path) -> None:
    copy = tmp_path / "gen"
    shutil.copytree(ROOT / "gen", copy)
    target = copy / "agora" / "auth" / "v1" / "auth_pb2.py"
    target.write_bytes(target.read_bytes() + b"\n# edited by hand\n")
    result = subprocess.run(
        [sys.executable, "tools/gen_protos.py", "--check", "--gen-dir", str(copy)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "differs: agora/auth/v1/auth_pb2.py" in result.stderr


def test_every_service_proto_follows_the_package_layout() -> None:
    for proto in (ROOT / "protos").rglob("*.proto"):
        relative = proto.relative_to(ROOT / "protos")
        package = ".".join(relative.parent.parts)
        assert f"package {package};" in proto.read_text(), relative

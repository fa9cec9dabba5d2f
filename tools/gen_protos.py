"""Generate the `agora` Python package from protos/ into gen/.

There is exactly one way to make generated code: this script. It writes
messages (`*_pb2.py`), gRPC stubs (`*_pb2_grpc.py`) and typed stubs for both
(`*.pyi`, via mypy-protobuf) into a fresh directory and then swaps it into
place, so an interrupted run never leaves a half-generated package behind.
`--check` regenerates into a scratch directory and fails when gen/ differs,
which is how the test suite catches stale or hand-edited generated code.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GEN_ROOT = ROOT / "gen"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def _plugin(name: str) -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    path = scripts / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise SystemExit(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
        path = Path(found)
    return str(path)


def generate(out_dir: Path) -> None:
    """Compile every proto under protos/ into out_dir as one importable package."""
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages (not namespace packages), so mypy and wheels see them.
    for directory in [out_dir / "agora", *(out_dir / "agora").rglob("*")]:
        if directory.is_dir():
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text("")
    (out_dir / "agora" / "py.typed").write_text("")


def _differences(expected: Path, actual: Path) -> list[str]:
    def listing(base: Path) -> set[str]:
        return {
            str(p.relative_to(base))
            for p in base.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    want, have = listing(expected), listing(actual) if actual.exists() else set()
    problems = [f"missing: {name}" for name in sorted(want - have)]
    problems += [f"unexpected: {name}" for name in sorted(have - want)]
    problems += [
        f"differs: {name}"
        for name in sorted(want & have)
        if not filecmp.cmp(expected / name, actual / name, shallow=False)
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if gen/ is stale")
    parser.add_argument("--gen-dir", type=Path, default=GEN_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gen_root: Path = args.gen_dir
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".gen-") as scratch:
        fresh = Path(scratch) / "gen"
        generate(fresh)
        if args.check:
            problems = _differences(fresh, gen_root)
            if problems:
                print("gen/ is stale; run `make gen`:", *problems, sep="\n  ", file=sys.stderr)
                return 1
            print("gen/ is up to date")
            return 0
        if gen_root.exists():
            shutil.rmtree(gen_root)
        fresh.rename(gen_root)
    print(f"generated {len(proto_files())} protos into {gen_root}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

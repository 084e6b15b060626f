"""Regenerate the Python stubs of protos/ into leaderboard/v1/ (committed).

`--check` regenerates into a temporary directory and fails when the committed
stubs differ, so a proto edit without regeneration cannot pass `make test`.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_DIR = Path("leaderboard") / "v1"
INIT = '"""Generated gRPC stubs of protos/leaderboard/v1 (do not edit; see scripts/gen_protos.py)."""\n'


def generate(out: Path) -> None:
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    # The mypy-protobuf plugins sit beside the interpreter, not necessarily on PATH.
    bindir = Path(sys.executable).parent
    files = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PACKAGE_DIR).glob("*.proto"))
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    subprocess.run(cmd, check=True)
    (out / PACKAGE_DIR / "__init__.py").write_text(INIT)


def generated_files(base: Path) -> set[str]:
    target = base / PACKAGE_DIR
    if not target.exists():
        return set()
    return {p.name for p in target.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh = generated_files(out)
        if args.check:
            current = generated_files(ROOT)
            stale = sorted(
                name
                for name in fresh | current
                if name not in fresh
                or name not in current
                or not filecmp.cmp(out / PACKAGE_DIR / name, ROOT / PACKAGE_DIR / name, shallow=False)
            )
            if stale:
                print(f"stale generated stubs: {', '.join(stale)}; run `make protos`", file=sys.stderr)
                return 1
            print("generated stubs are fresh")
            return 0
        target = ROOT / PACKAGE_DIR
        target.mkdir(parents=True, exist_ok=True)
        for name in generated_files(ROOT):
            (target / name).unlink()
        for name in fresh:
            shutil.copyfile(out / PACKAGE_DIR / name, target / name)
        print(f"wrote {len(fresh)} files to {PACKAGE_DIR}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

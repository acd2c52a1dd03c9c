"""Execute the teaching notebooks in notebooks/ and fail on the first broken cell.

    python -m harness.notebooks                    # every notebooks/*.ipynb
    python -m harness.notebooks notebooks/01_authoring.ipynb --timeout 60
    python -m harness.notebooks --clear            # strip outputs from the sources in place

Each notebook runs in a fresh ``python3`` kernel started with this interpreter
(so it imports the same ``squidie``), with a per-cell timeout. Executed copies,
outputs included, go to harness/out/notebooks/ (gitignored); the committed
sources must carry no outputs, so diffs stay readable. Exit status 1 when any
cell raised or timed out, or when a source notebook has outputs committed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = Path(__file__).resolve().parent / "out" / "notebooks"
KERNEL = "python3"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in tracebacks, unreadable in CI logs


def _require() -> None:
    """Fail early, with the install line, when the notebook tooling is missing."""
    missing = []
    for module in ("nbformat", "nbclient", "ipykernel", "jupyter_client"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: pip install -e . --group notebooks "
            "(pip >= 25.1; or run: nox -s notebooks)"
        )


def has_outputs(nb: Any) -> bool:
    """True when any code cell carries outputs or an execution count."""
    return any(
        c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells
    )


def clear(nb: Any) -> None:
    """Remove outputs and execution counts (what gets committed)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)


def kernel_manager(spec_dir: Path) -> Any:
    """A manager for a ``python3`` kernel that runs *this* interpreter.

    A ``python3`` kernelspec found on the machine might point at another Python
    without squidie installed; a private spec directory rules that out.
    """
    import json

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kdir = spec_dir / KERNEL
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (squidie)",
                "language": "python",
            }
        )
    )
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir)], ensure_native_kernel=False)
    if os.name != "posix":
        return KernelManager(kernel_name=KERNEL, kernel_spec_manager=ksm)
    # Unix sockets, not TCP ports: nothing listens on the network, and parallel CI
    # jobs cannot collide. The path is absolute because the kernel runs in notebooks/.
    return KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=ksm, transport="ipc", ip=str(spec_dir / "kernel")
    )


def execute(path: Path, *, timeout: int, spec_dir: Path) -> tuple[bool, str]:
    """Run one notebook; write the executed copy. Returns (ok, message)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    print(f"  {path.name}: {len(nb.cells)} cells ({len(code)} code) ...", flush=True)
    done = {"n": 0}

    def on_cell_executed(cell: Any, cell_index: int, **_: Any) -> None:
        if cell.cell_type == "code":
            done["n"] += 1

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL,
        km=kernel_manager(spec_dir),
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=on_cell_executed,
    )
    started = time.monotonic()
    ok, message = True, ""
    try:
        client.execute(cleanup_kc=True)  # we made the manager, so nbclient would not stop it
    except (CellExecutionError, CellTimeoutError) as exc:
        ok, message = False, ANSI.sub("", str(exc))
    except Exception as exc:  # kernel died, could not start, ...
        ok, message = False, f"{type(exc).__name__}: {exc}"
    elapsed = time.monotonic() - started
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / path.name)
    status = "ok" if ok else f"FAILED at code cell {done['n']}/{len(code)}"
    return ok, f"    {status} in {elapsed:.1f} s -> {OUT.relative_to(ROOT) / path.name}" + (
        f"\n{message}" if message else ""
    )


def main(argv: list[str] | None = None) -> int:
    """Execute the notebooks; 0 when all of them ran cleanly."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    parser.add_argument(
        "--clear",
        action="store_true",
        help="strip outputs from the source notebooks in place and exit",
    )
    args = parser.parse_args(argv)
    _require()
    import nbformat

    paths = [p.resolve() for p in args.paths] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks found in {NOTEBOOKS}")
        return 1
    if args.clear:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            if has_outputs(nb):
                clear(nb)
                nbformat.write(nb, path)
                print(f"  cleared {path.name}")
        return 0

    print(f"executing {len(paths)} notebook(s), timeout {args.timeout} s per cell")
    started = time.monotonic()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="squidie-kernels-") as spec_dir:
        for i, path in enumerate(paths, 1):
            print(f"[{i}/{len(paths)}]", end="")
            if has_outputs(nbformat.read(path, as_version=4)):
                failures.append(path.name)
                print(
                    f"  {path.name}: has outputs committed; run "
                    "`python -m harness.notebooks --clear` first"
                )
                continue
            ok, message = execute(path, timeout=args.timeout, spec_dir=Path(spec_dir))
            print(message, flush=True)
            if not ok:
                failures.append(path.name)
    total = time.monotonic() - started
    if failures:
        print(f"FAILED: {', '.join(failures)} ({total:.1f} s)")
        return 1
    print(f"all {len(paths)} notebook(s) ran cleanly in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

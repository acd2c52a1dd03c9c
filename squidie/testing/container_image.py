"""Which PostgreSQL image a test container runs, and building one where none can be pulled.

Where Docker can pull, containers run the stock ``postgres`` image with a
normal port mapping. Where it cannot (no registry reachable, as on the
project's CI machines), they run ``squidie-postgres:<recipe digest>``, built
here from Debian packages through the apt mirror the host already uses:
``debootstrap --variant=minbase --include=postgresql <suite> <rootfs> <mirror>``,
trimmed, plus a small entry script (initdb only when the data directory is
empty, then ``exec postgres`` as the postgres user), streamed into
``docker import``. The image store is the cache: the tag carries the digest
of the recipe, so a changed recipe builds a new image and an unchanged one is
reused. Building needs root and debootstrap (``apt-get install debootstrap``).

``SQUIDIE_TEST_CONTAINER_IMAGE`` forces a choice: ``stock`` or ``local``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "IMAGE_ENV_VAR",
    "LOCAL_REPOSITORY",
    "STOCK_IMAGE",
    "ImageChoice",
    "ImageUnavailable",
    "Recipe",
    "build_local_image",
    "choose_image",
    "debian_mirror",
]

STOCK_IMAGE: Final = "postgres:16-alpine"
LOCAL_REPOSITORY: Final = "squidie-postgres"
IMAGE_ENV_VAR: Final = "SQUIDIE_TEST_CONTAINER_IMAGE"
ENTRYPOINT: Final = "/usr/local/bin/squidie-postgres"
DATA_DIR: Final = "/var/lib/postgresql/data"

Mode = Literal["stock", "local"]

# Runs as root inside the container. A restarted container keeps its data
# directory, so initdb runs only while it is empty (into a scratch directory,
# renamed when complete, so a container killed mid-initdb starts over). The
# postmaster replaces the shell (exec) and, through setpriv, runs as postgres
# without a parent in between: it is the container's PID 1, so a SIGKILL of
# the container kills it and every backend at once, like a power cut.
ENTRY_SCRIPT: Final = """#!/bin/sh
set -eu
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=${PGDATA:-/var/lib/postgresql/data}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
if [ ! -s "$data/PG_VERSION" ]; then
    rm -rf "$data.init" "$data"
    mkdir -p "$data.init"
    chown postgres:postgres "$data.init"
    as_postgres "$bindir/initdb" --no-sync -A trust -U postgres -E UTF8 --no-locale \\
        -D "$data.init" >/dev/null
    mv "$data.init" "$data"
fi
# The postmaster that wrote this died with the previous container.
rm -f "$data/postmaster.pid"
exec setpriv --reuid=postgres --regid=postgres --init-groups -- \\
    "$bindir/postgres" -D "$data" -c unix_socket_directories=/tmp "$@"
"""

# Left out of the image (glob patterns in the root file system): caches and
# documentation; the cluster the package's post-install script created (the
# entry script makes its own); LLVM and its bitcode, the bulk of the image,
# unused with jit=off; postgresql-common's Perl wrappers, unused (the entry
# script runs initdb and postgres itself). A smaller image is a faster
# container start on the vfs storage driver, which copies it every time.
_TRIM: Final = (
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/locale/*",
    "usr/share/info/*",
    "usr/share/i18n",
    "var/lib/postgresql/*",
    "etc/postgresql/*",
    "run/postgresql/*",
    "usr/lib/*-linux-gnu/libLLVM*",
    "usr/lib/*-linux-gnu/libz3.so*",
    "usr/lib/postgresql/*/lib/llvmjit*",
    "usr/lib/postgresql/*/lib/bitcode",
    "usr/lib/*-linux-gnu/perl",
    "usr/share/perl",
)


class ImageUnavailable(RuntimeError):
    """No PostgreSQL image can be had: the stock one cannot be pulled and the local one
    cannot be built here."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """What the local image is built from; its digest names the image."""

    suite: str
    packages: tuple[str, ...] = ("postgresql",)
    variant: str = "minbase"
    script: str = ENTRY_SCRIPT

    def digest(self) -> str:
        """A stable hex digest of everything that shapes the image."""
        text = "\n".join([self.suite, self.variant, *self.packages, self.script, *_TRIM])
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def tag(self) -> str:
        """The image name: ``squidie-postgres:<first 12 hex digits of the digest>``."""
        return f"{LOCAL_REPOSITORY}:{self.digest()[:12]}"

    @classmethod
    def for_host(cls, os_release: Path = Path("/etc/os-release")) -> Recipe:
        """The recipe for the host's Debian release (bookworm when it cannot be read)."""
        suite = "bookworm"
        with contextlib.suppress(OSError):
            found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", os_release.read_text(), re.M)
            if found:
                suite = found.group(1)
        return cls(suite=suite)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageChoice:
    """The image containers run, how it was had, and how long that took."""

    image: str
    mode: Mode
    how: str  # "present", "pulled", "built", "reused"
    seconds: float = 0.0
    steps: tuple[tuple[str, float], ...] = ()  # (what, seconds) of a build


def choose_image(
    client: Any, *, recipe: Recipe | None = None, log: Callable[[str], None] | None = None
) -> ImageChoice:
    """Pick the image: the stock one when present or pullable, else the local one.

    ``client`` is a ``docker.DockerClient``. ``SQUIDIE_TEST_CONTAINER_IMAGE``
    (``stock`` or ``local``) skips the probing. Raises :class:`ImageUnavailable`
    saying what to do when neither can be had.
    """
    forced = os.environ.get(IMAGE_ENV_VAR, "").strip().lower()
    if forced not in ("", "stock", "local"):
        raise ImageUnavailable(f"{IMAGE_ENV_VAR} must be 'stock' or 'local', got {forced!r}")
    pull_problem = ""
    if forced != "local":
        started = time.monotonic()
        try:
            how = _present_or_pull(client, STOCK_IMAGE)
            return ImageChoice(
                image=STOCK_IMAGE, mode="stock", how=how, seconds=time.monotonic() - started
            )
        except Exception as exc:
            pull_problem = f"{STOCK_IMAGE} could not be pulled ({_first_line(exc)})"
            if forced == "stock":
                raise ImageUnavailable(pull_problem) from exc
    try:
        return build_local_image(client, recipe or Recipe.for_host(), log=log)
    except ImageUnavailable as exc:
        raise ImageUnavailable(f"{pull_problem}; {exc}" if pull_problem else str(exc)) from exc


def _docker_errors() -> Any:
    return importlib.import_module("docker.errors")


def _present_or_pull(client: Any, image: str) -> str:
    try:
        client.images.get(image)
        return "present"
    except _docker_errors().ImageNotFound:
        repository, _, tag = image.partition(":")
        client.images.pull(repository, tag=tag or "latest")
        return "pulled"


def build_local_image(
    client: Any,
    recipe: Recipe,
    *,
    mirror: str | None = None,
    workdir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> ImageChoice:
    """Return the local image of ``recipe``, building and importing it unless present.

    Older ``squidie-postgres`` tags are removed after a build. Raises
    :class:`ImageUnavailable` when it must be built but cannot be (not root, no
    debootstrap, no apt mirror, or debootstrap failed).
    """
    say = log or (lambda _line: None)
    started = time.monotonic()
    with contextlib.suppress(_docker_errors().ImageNotFound):
        client.images.get(recipe.tag)
        return ImageChoice(
            image=recipe.tag, mode="local", how="reused", seconds=time.monotonic() - started
        )
    debootstrap = _build_prerequisites()
    source = mirror or debian_mirror()
    steps: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="squidie-rootfs-", dir=workdir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"building {recipe.tag}: debootstrap {recipe.suite} from {source} ...")
        began = time.monotonic()
        _debootstrap(debootstrap, recipe, rootfs, source, Path(tmp) / "debootstrap.log")
        steps.append(("debootstrap", time.monotonic() - began))
        _finish_rootfs(rootfs, recipe)
        began = time.monotonic()
        _import(client, rootfs, recipe.tag)
        steps.append(("docker import", time.monotonic() - began))
    _remove_older_tags(client, recipe.tag)
    return ImageChoice(
        image=recipe.tag,
        mode="local",
        how="built",
        seconds=time.monotonic() - started,
        steps=tuple(steps),
    )


def _build_prerequisites() -> str:
    """The debootstrap program, or why the image cannot be built here."""
    how = (
        "Build it on a Debian/Ubuntu machine as root with debootstrap installed "
        "(apt-get install debootstrap; tools/ensure_container_packages.sh does), or use "
        "a Docker daemon that can pull " + STOCK_IMAGE + "."
    )
    if os.geteuid() != 0:
        raise ImageUnavailable(f"the local PostgreSQL image must be built, which needs root. {how}")
    found = shutil.which("debootstrap")
    if found is None:
        raise ImageUnavailable(
            f"the local PostgreSQL image must be built, but debootstrap is not installed. {how}"
        )
    return found


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive apt uses here (not the security one), from its sources lists.

    Reads deb822 ``*.sources`` files and one-line ``sources.list`` files.
    """
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        with contextlib.suppress(OSError):
            for uri in _archive_uris(path.read_text()):
                return uri.rstrip("/")
    raise ImageUnavailable(
        f"no Debian archive found in {apt_dir}/sources.list*: the local "
        "PostgreSQL image is built from Debian packages through it"
    )


def _archive_uris(text: str) -> Iterator[str]:
    """URIs of enabled ``deb`` entries, security archives excluded."""
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M))
        if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
            yield from (u for u in fields.get("URIs", "").split() if "security" not in u)
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line).split()
        if len(words) >= 3 and words[0] == "deb" and "security" not in words[1]:
            yield words[1]


def _debootstrap(program: str, recipe: Recipe, rootfs: Path, mirror: str, log: Path) -> None:
    command = [
        program,
        f"--variant={recipe.variant}",
        "--include=" + ",".join(recipe.packages),
        recipe.suite,
        str(rootfs),
        mirror,
    ]
    with open(log, "wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise ImageUnavailable(f"debootstrap failed (exit {done.returncode}): {tail}")


def _finish_rootfs(rootfs: Path, recipe: Recipe) -> None:
    """Trim the root file system and add the entry script."""
    for pattern in _TRIM:
        for target in sorted(rootfs.glob(pattern)):
            if not _inside(rootfs, target):
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
    script = rootfs / ENTRYPOINT.lstrip("/")
    if not _inside(rootfs, script):
        raise ImageUnavailable(f"{ENTRYPOINT} would land outside the root file system")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(recipe.script)
    script.chmod(0o755)


def _inside(rootfs: Path, path: Path) -> bool:
    """Whether ``path`` lies in ``rootfs`` without passing through a symlink: the root file
    system's absolute symlinks (``var/run -> /run``) point into the host's."""
    current = rootfs
    for part in path.relative_to(rootfs).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            return False
    return True


def _import(client: Any, rootfs: Path, tag: str) -> None:
    """Stream ``tar`` of the root file system into ``docker import``."""
    repository, _, version = tag.partition(":")
    changes = [
        f'ENTRYPOINT ["{ENTRYPOINT}"]',
        f"ENV PGDATA={DATA_DIR}",
        f"LABEL squidie.recipe={version}",
    ]
    with tempfile.TemporaryFile() as errors:
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", "-", "."],
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        stream = tar.stdout
        assert stream is not None
        try:
            client.api.import_image(
                src=iter(lambda: stream.read(1 << 20), b""),
                repository=repository,
                tag=version,
                changes=changes,
                stream_src=True,
            )
        finally:
            stream.close()
            code = tar.wait()
        errors.seek(0)
        if code != 0:
            raise ImageUnavailable(
                f"tar of the root file system failed (exit {code}): "
                f"{errors.read()[-500:].decode(errors='replace')}"
            )
    client.images.get(tag)  # raises if the import did not produce it


def _remove_older_tags(client: Any, keep: str) -> None:
    for image in client.images.list(name=LOCAL_REPOSITORY):
        for tag in image.tags:
            if tag != keep:
                with contextlib.suppress(Exception):
                    client.images.remove(tag)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]

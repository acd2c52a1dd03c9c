"""Choosing and building the PostgreSQL image for containers, and failing with directions
when there is no Docker: all without a Docker daemon."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from squidie.testing import container_image as ci
from squidie.testing import dockerd
from squidie.testing.containers import ContainerCluster


class FakeImages:
    def __init__(self, present: set[str], pullable: bool) -> None:
        self.present, self.pullable, self.pulled = present, pullable, []

    def get(self, name: str) -> object:
        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return object()

    def pull(self, repository: str, tag: str) -> object:
        self.pulled.append(f"{repository}:{tag}")
        if not self.pullable:
            raise docker.errors.APIError("lookup registry-1.docker.io: no such host")
        self.present.add(f"{repository}:{tag}")
        return object()


class FakeClient:
    def __init__(self, present: set[str] | None = None, pullable: bool = False) -> None:
        self.images = FakeImages(present or set(), pullable)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[ci.Recipe]:
    """Replace the slow build with a record of what would have been built."""
    calls: list[ci.Recipe] = []

    def fake_build(client: Any, recipe: ci.Recipe, **kwargs: Any) -> ci.ImageChoice:
        calls.append(recipe)
        return ci.ImageChoice(image=recipe.tag, mode="local", how="built")

    monkeypatch.setattr(ci, "build_local_image", fake_build)
    monkeypatch.delenv(ci.IMAGE_ENV_VAR, raising=False)
    return calls


def test_the_stock_image_is_used_when_present_or_pullable(built: list[ci.Recipe]) -> None:
    present = ci.choose_image(FakeClient({ci.STOCK_IMAGE}))
    pulled_client = FakeClient(pullable=True)
    pulled = ci.choose_image(pulled_client)

    assert (present.mode, present.how, present.image) == ("stock", "present", ci.STOCK_IMAGE)
    assert (pulled.mode, pulled.how) == ("stock", "pulled")
    assert pulled_client.images.pulled == [ci.STOCK_IMAGE]
    assert built == []


def test_the_local_image_is_built_where_docker_cannot_pull(built: list[ci.Recipe]) -> None:
    choice = ci.choose_image(FakeClient(pullable=False), recipe=ci.Recipe(suite="bookworm"))

    assert (choice.mode, choice.image) == ("local", ci.Recipe(suite="bookworm").tag)
    assert [r.suite for r in built] == ["bookworm"]


def test_the_choice_can_be_forced(built: list[ci.Recipe], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ci.IMAGE_ENV_VAR, "local")
    client = FakeClient(pullable=True)
    assert ci.choose_image(client).mode == "local"
    assert client.images.pulled == [], "forcing the local image skips the pull"

    monkeypatch.setenv(ci.IMAGE_ENV_VAR, "stock")
    with pytest.raises(ci.ImageUnavailable, match="could not be pulled"):
        ci.choose_image(FakeClient(pullable=False))

    monkeypatch.setenv(ci.IMAGE_ENV_VAR, "alpine")
    with pytest.raises(ci.ImageUnavailable, match="must be 'stock' or 'local'"):
        ci.choose_image(FakeClient())


def test_building_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ci.ImageUnavailable, match=r"needs root.*debootstrap"):
        ci.build_local_image(FakeClient(), ci.Recipe(suite="bookworm"))

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(ci.shutil, "which", lambda name: None)
    with pytest.raises(ci.ImageUnavailable, match="debootstrap is not installed"):
        ci.build_local_image(FakeClient(), ci.Recipe(suite="bookworm"))


def test_a_built_image_is_reused_without_building(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = ci.Recipe(suite="bookworm")
    monkeypatch.setattr(ci, "_build_prerequisites", lambda: pytest.fail("built again"))

    choice = ci.build_local_image(FakeClient({recipe.tag}), recipe)

    assert (choice.image, choice.how) == (recipe.tag, "reused")


def test_the_recipe_digest_names_the_image_and_changes_with_the_recipe() -> None:
    base = ci.Recipe(suite="bookworm")

    assert base.tag == ci.Recipe(suite="bookworm").tag
    assert base.tag.startswith("squidie-postgres:") and len(base.tag.split(":")[1]) == 12
    assert ci.Recipe(suite="trixie").tag != base.tag
    assert ci.Recipe(suite="bookworm", script=base.script + "\n").tag != base.tag


def test_the_mirror_is_read_from_apt_sources_skipping_security(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "\nTypes: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert ci.debian_mirror(tmp_path) == "http://mirror.example/debian"

    one_line = tmp_path / "one-line"
    (one_line / "sources.list.d").mkdir(parents=True)
    (one_line / "sources.list").write_text(
        "# comment\ndeb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://old.example/debian bookworm main\n"
    )
    assert ci.debian_mirror(one_line) == "http://old.example/debian"

    with pytest.raises(ci.ImageUnavailable, match="no Debian archive"):
        ci.debian_mirror(tmp_path / "missing")


def test_trimming_the_root_file_system_never_follows_its_symlinks_into_the_host(
    tmp_path: Path,
) -> None:
    host_run = tmp_path / "host-run"
    (host_run / "postgresql").mkdir(parents=True)
    (host_run / "postgresql" / "15-main.pid").write_text("2202")
    rootfs = tmp_path / "rootfs"
    (rootfs / "var" / "cache" / "apt" / "archives").mkdir(parents=True)
    (rootfs / "var" / "cache" / "apt" / "archives" / "postgresql-15.deb").write_text("deb")
    (rootfs / "usr" / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    (rootfs / "usr" / "lib" / "x86_64-linux-gnu" / "libLLVM-14.so.1").write_text("llvm")
    (rootfs / "usr" / "lib" / "x86_64-linux-gnu" / "libpq.so.5").write_text("keep")
    (rootfs / "var" / "run").symlink_to(host_run)  # as Debian's var/run -> /run
    host_share = tmp_path / "host-share"
    (host_share / "doc").mkdir(parents=True)
    (host_share / "doc" / "README").write_text("host")
    (rootfs / "usr" / "share").symlink_to(host_share)  # usr/share/doc/* would glob through it
    (rootfs / "etc" / "postgresql").mkdir(parents=True)
    (rootfs / "etc" / "postgresql" / "15").symlink_to(host_run)

    ci._finish_rootfs(rootfs, ci.Recipe(suite="bookworm"))

    assert (host_run / "postgresql" / "15-main.pid").read_text() == "2202"
    assert (host_share / "doc" / "README").read_text() == "host"
    assert not (rootfs / "etc" / "postgresql" / "15").is_symlink(), "a symlink itself goes"
    assert host_run.is_dir()
    assert not list((rootfs / "var" / "cache" / "apt" / "archives").iterdir())
    assert sorted(p.name for p in (rootfs / "usr" / "lib" / "x86_64-linux-gnu").iterdir()) == [
        "libpq.so.5"
    ]
    script = rootfs / ci.ENTRYPOINT.lstrip("/")
    assert script.read_text() == ci.ENTRY_SCRIPT and os.access(script, os.X_OK)


def test_without_docker_the_container_provider_fails_saying_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dockerd, "docker_answers", lambda *a, **k: False)
    monkeypatch.setattr(dockerd, "can_start_private", lambda: "a private dockerd needs root")
    monkeypatch.setattr("squidie.testing.containers.docker_answers", lambda *a, **k: False)

    with (
        pytest.raises(dockerd.DockerUnavailable, match="needs root") as caught,
        dockerd.docker_daemon(),
    ):
        pass
    assert "nox -s containers" in str(caught.value)
    with pytest.raises(dockerd.DockerUnavailable, match="No Docker daemon answered"):
        ContainerCluster()

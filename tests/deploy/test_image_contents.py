"""The image holds everything its commands import (deploy/Dockerfile, read without Docker)."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import yaml

from tests.deploy.image import (
    DOCKERFILE,
    ROOT,
    copied_before_install,
    instructions,
    missing_from_image,
    pip_install_target,
)


def compose_commands() -> list[list[str]]:
    """The command of every compose service built from deploy/Dockerfile."""
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    commands = []
    for service in services.values():
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile":
            command = service["command"]
            commands.append(shlex.split(command) if isinstance(command, str) else command)
    return commands


def test_compose_runs_every_service_of_the_image() -> None:
    modules = sorted(argv[argv.index("-m") + 1] for argv in compose_commands())
    expected = sorted(
        f"services.{path.parent.name}" for path in (ROOT / "services").glob("*/__main__.py")
    )
    assert modules == expected


def test_the_image_holds_every_package_the_commands_import() -> None:
    missing = missing_from_image(DOCKERFILE.read_text(), compose_commands())
    assert not missing, f"deploy/Dockerfile's image lacks what its commands import: {missing}"


def test_the_check_notices_project_code_left_out_of_the_image() -> None:
    dockerfile = DOCKERFILE.read_text().replace("COPY helpstream ./helpstream\n", "")
    assert "helpstream" not in copied_before_install(dockerfile)
    missing = missing_from_image(dockerfile, compose_commands())
    assert missing == ["helpstream (project code, not copied)"]


def test_the_check_notices_a_runtime_dependency_left_out_of_the_image() -> None:
    missing = missing_from_image(
        DOCKERFILE.read_text(), compose_commands(), drop=frozenset({"pyyaml"})
    )
    assert missing == ["yaml (distribution PyYAML not installed)"]


def test_the_image_installs_the_project_without_extras_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    assert pip_install_target(text) == (".", frozenset())
    users = [arguments for keyword, arguments in instructions(text) if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")


@pytest.mark.parametrize(
    ("line", "extras"),
    [("RUN pip install --no-cache-dir '.[dev,embedded]'", {"dev", "embedded"})],
)
def test_extras_in_the_install_line_are_read(line: str, extras: set[str]) -> None:
    assert pip_install_target(line) == (".", frozenset(extras))

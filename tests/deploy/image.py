"""What deploy/Dockerfile puts in the image, and what the image's commands import.

Read without a Docker engine: the COPY and `pip install` instructions are parsed, the
commands' modules are found by walking imports from `services/<name>/__main__.py` and the
console scripts of pyproject.toml, and the third-party packages they import are matched to
the distributions `pip install` of the Dockerfile's target brings in.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def pip_install_target(text: str) -> tuple[str, frozenset[str]]:
    """The local project `pip install` installs (`.` or `.[extra,...]`) and its extras."""
    for keyword, arguments in instructions(text):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", arguments):
            words = shlex.split(command)
            if "pip" in words and "install" in words:
                targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
                for target in targets:
                    path, _, extras = target.partition("[")
                    if path in (".", "/app", "./"):
                        names = extras.rstrip("]").split(",") if extras else []
                        return path, frozenset(n.strip() for n in names if n.strip())
    raise AssertionError("deploy/Dockerfile never runs `pip install .`")


def copied_before_install(text: str) -> set[str]:
    """Top-level names the COPY instructions put in the work dir before `pip install`."""
    copied: set[str] = set()
    for keyword, arguments in instructions(text):
        if keyword == "RUN" and "pip install" in arguments:
            return copied
        if keyword == "COPY":
            parts = [p for p in arguments.split() if not p.startswith("--")]
            *sources, target = parts
            if target.rstrip("/") in (".", "/app") or target.endswith("/"):
                copied.update(Path(s).name for s in sources)
            else:  # COPY services ./services
                copied.add(Path(target).name)
    return copied


def runtime_distributions(extras: frozenset[str], drop: frozenset[str] = frozenset()) -> set[str]:
    """Canonical names of the distributions `pip install .[extras]` installs: pyproject's
    dependencies (less `drop`, to prove the check notices), and theirs, recursively."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    found: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in found or name in drop:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (a marker for another platform)
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                wanted.append(sub)
    return found


def _absolute_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (`if TYPE_CHECKING:` blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _source_of(module: str) -> Path | None:
    parts = module.split(".")
    for candidate in (
        ROOT.joinpath(*parts, "__init__.py"),
        ROOT.joinpath(*parts[:-1], f"{parts[-1]}.py"),
    ):
        if candidate.is_file():
            return candidate
    return None


def first_party() -> set[str]:
    """Top-level packages of this project (pyproject's package include patterns)."""
    includes = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    return {pattern.rstrip("*") for pattern in includes}


def command_roots(compose_commands: list[list[str]]) -> set[str]:
    """Modules each command starts from: what `python -m services.<name>` runs (its
    `__main__` imports; importing it would start the service) and each console script."""
    roots: set[str] = set()
    for argv in compose_commands:
        module = argv[argv.index("-m") + 1]
        main = _source_of(f"{module}.__main__")
        assert main is not None, f"{module} has no __main__.py"
        roots.add(module)
        roots.update(m for m in _absolute_imports(main) if _source_of(m) is not None)
    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]
    roots.update(target.partition(":")[0] for target in scripts.values())
    return roots


def first_party_closure(roots: set[str]) -> set[str]:
    """Every module of this project the roots reach, lazy (in-function) imports included:
    a command that reaches one at run time needs it in the image too."""
    ours = first_party()
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        source = _source_of(module)
        if source is None:
            continue
        seen.add(module)
        parent = module.rpartition(".")[0]
        if parent:
            todo.append(parent)
        todo.extend(m for m in _absolute_imports(source) if m.split(".")[0] in ours)
    return seen


_IMPORT_WITHOUT = """
import importlib, importlib.abc, json, sys

BLOCKED = frozenset(json.loads(sys.argv[1]))


class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name.partition(".")[0])
        return None


sys.meta_path.insert(0, NotInTheImage())
missing = set()
for module in json.loads(sys.argv[2]):
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing.add(exc.name or str(exc))
print(json.dumps(sorted(missing)))
"""


def not_importable(modules: set[str], blocked: set[str]) -> list[str]:
    """Top-level packages that importing `modules` needs and cannot find once the `blocked`
    ones are hidden, as in the image (optional imports fall back there as they would).
    A fresh interpreter: this test process has imported plenty."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _IMPORT_WITHOUT,
            json.dumps(sorted(blocked)),
            json.dumps(sorted(modules)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    missing: list[str] = json.loads(result.stdout.splitlines()[-1])
    return missing


def missing_from_image(
    dockerfile: str, commands: list[list[str]], drop: frozenset[str] = frozenset()
) -> list[str]:
    """What the commands import that an image built from `dockerfile` would lack."""
    _, extras = pip_install_target(dockerfile)
    copied = copied_before_install(dockerfile)
    ours = first_party()
    modules = first_party_closure(command_roots(commands))
    missing = sorted(
        f"{top} (project code, not copied)"
        for top in {m.split(".")[0] for m in modules}
        if top not in copied
    )
    installed = runtime_distributions(extras, drop)
    # every package of this environment that no runtime distribution brings
    blocked = {
        top
        for top, dists in importlib.metadata.packages_distributions().items()
        if top not in ours and not {canonicalize_name(d) for d in dists} & installed
    }
    owners = importlib.metadata.packages_distributions()
    missing += [
        f"{name} (distribution {', '.join(owners.get(name, ['?']))} not installed)"
        for name in not_importable(modules, blocked)
    ]
    return missing

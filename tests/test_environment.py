"""environment.yml pins exactly what pyproject.toml pins (runtime and test dependencies)."""

import re
import tomllib

from nullspace.paths import REPO_ROOT


def pins_from_pyproject() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(req.split("==") for req in reqs)


def pins_from_environment() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "environment.yml").read_text().splitlines():
        match = re.match(r"^\s*-\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^\s,;<>]*", req), f"not an exact pin: {req}"


def test_environment_yml_matches_pyproject():
    assert pins_from_environment() == pins_from_pyproject()

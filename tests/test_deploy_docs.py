"""The deployment guide and its examples name only settings and files that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "deployment.md"
DEPLOY = ROOT / "docs" / "deploy"
NAME = re.compile(r"\bTECHASSIST_[A-Z0-9_]*[A-Z0-9]")
#: Read by the client or the tests, not by ``Settings``.
OTHERS = {"TECHASSIST_TOKEN"}


def documents() -> list[Path]:
    return [GUIDE, *sorted(p for p in DEPLOY.iterdir() if p.is_file())]


def test_every_variable_the_deployment_docs_name_is_a_setting() -> None:
    known = {env_name(field) for field in Settings.model_fields} | OTHERS
    unknown = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in documents()
        for name in NAME.findall(path.read_text(encoding="utf-8"))
        if name not in known and not name.startswith("TECHASSIST_TEST_")
    }
    assert sorted(unknown) == []


def test_the_compose_file_parses_and_uses_the_files_beside_it() -> None:
    yaml: Any = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    instances = [s for s in services.values() if s.get("build")]
    assert instances and {"redis", "postgres", "nginx"} <= set(services)
    for service in instances:
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert (context / service["build"]["dockerfile"]).is_file()
        assert (context / "pyproject.toml").is_file()
    mounts = [v.split(":")[0] for v in services["nginx"]["volumes"]]
    assert "./nginx.conf" in mounts and (DEPLOY / "nginx.conf").is_file()
    upstreams = re.findall(r"server (\S+):8000", (DEPLOY / "nginx.conf").read_text())
    assert upstreams and set(upstreams) <= set(services)


def test_the_dockerfile_copies_what_the_package_is_built_from() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    copied = {
        part for line in re.findall(r"^COPY (.+)$", dockerfile, re.M) for part in line.split()[:-1]
    }
    assert all((ROOT / path).exists() for path in copied)
    assert {"pyproject.toml", "README.md", "bot", "bridges", "orchestrator_core", "plans"} <= copied

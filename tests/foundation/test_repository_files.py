"""What a newcomer reads and runs before any code: the README's first steps, the Docker
build context and the Compose file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RUN = "python3 -m venv .venv && . .venv/bin/activate && pip install . && callbridge serve"
TEST = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && pytest"


def test_readme_starts_with_the_two_commands_and_open_belongs_to_run() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text.split("\n---\n", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", head, re.S)
    assert blocks == [RUN, TEST]
    before_run, after_run = head.split(f"```sh\n{RUN}\n```", 1)
    between, after_test = after_run.split(f"```sh\n{TEST}\n```", 1)
    # Opening the UI is a step of running callbridge, said before the run command ...
    assert "<http://127.0.0.1:8000/>" in before_run
    # ... and never after the test command, where it would read as a step of the tests.
    assert "127.0.0.1:8000" not in between + after_test


def test_readme_names_the_compose_version_and_guides_the_offline_try() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Docker Compose v2" in text
    offline = text.split("## Try it end to end, offline", 1)[1]
    assert "My Domain or other URL (below)" in offline
    assert "http://127.0.0.1:8090" in offline


def test_docker_build_context_leaves_out_local_state() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".git", ".venv", "callbridge-data", "**/secret.key", "**/*.db"):
        assert needed in patterns, needed
    # What the Dockerfile copies is not ignored.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for copied in ("pyproject.toml", "README.md", "alembic.ini", "src"):
        assert copied in dockerfile and copied not in patterns


def test_compose_builds_one_image_for_web_and_worker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    built = [name for name, service in services.items() if "build" in service]
    assert built == ["web"]
    assert services["web"]["image"] == services["worker"]["image"] == "callbridge:local"
    assert services["worker"]["pull_policy"] == "never"

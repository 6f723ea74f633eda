"""deploy/: the compose file, its environment and Agora's Dockerfile agree with the project.

Containers cannot run here, so these tests hold the files against what they name: every
command against the CLI's own command tree, every AGORA_ variable against the settings model
(nested JSON ones against their nested models, and all of them parsed by ``Settings``), the
services' URLs and ports against each other, the images against the Dockerfile or a pinned
official image, and the Dockerfile against pyproject.toml and the Makefile.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml
from dotenv import dotenv_values
from packaging.requirements import Requirement
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from agora.cli.main import app
from agora.config import Settings
from agora.wiring import SECTIONS, check_sections

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: publishers of official images: Docker Official Images (no namespace) and the Apache
#: Software Foundation's own (apache/spark)
OFFICIAL_NAMESPACES = {"", "library", "apache"}
SPARK_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
SPARK_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
PLACEHOLDER = "change-me"


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def interpolate(value: str) -> str:
    """Compose's ``${NAME:-default}`` with nothing set in the shell (the file must run as is);
    ``$$`` is a literal dollar."""

    def default(match: re.Match[str]) -> str:
        if match.group(2) is None:
            raise AssertionError(f"{match.group(0)} has no default: the file needs a shell var")
        return match.group(3)

    resolved = re.sub(r"\$\{(\w+)(:?-(.*?))?\}", default, value.replace("$$", "\0"))
    return resolved.replace("\0", "$")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    words = shlex.split(command) if isinstance(command, str) else list(command)
    return [interpolate(str(word)) for word in words]


def option(words: list[str], name: str) -> str:
    assert name in words, f"{name} missing from {words}"
    return words[words.index(name) + 1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def is_project_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if not build:
        return False
    context = (DEPLOY / build["context"]).resolve()
    return (context / build.get("dockerfile", "Dockerfile")).resolve() == DEPLOY / "Dockerfile"


def agora_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if is_project_image(s)}


def env_files(service: dict[str, Any]) -> list[Path]:
    """The env files a service reads, as the example each is copied from."""
    named = service.get("env_file", [])
    named = [named] if isinstance(named, str | dict) else named
    paths = [entry["path"] if isinstance(entry, dict) else entry for entry in named]
    return [DEPLOY / f"{path}.example" for path in paths]


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment: its env files, then its ``environment`` over them."""
    env: dict[str, str] = {}
    for path in env_files(service):
        assert path.exists(), f"{path.name} (the example of the env file compose reads) missing"
        env.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    extra = service.get("environment", {})
    if isinstance(extra, list):
        extra = dict(item.split("=", 1) for item in extra)
    env.update({k: interpolate(str(v)) for k, v in extra.items()})
    return env


def commented_settings(path: Path) -> dict[str, str]:
    """The optional AGORA_ lines an env file shows commented out (``# AGORA_X=...``)."""
    found = re.findall(r"^#\s*(AGORA_\w+=.*)$", path.read_text(), flags=re.MULTILINE)
    return dict(line.split("=", 1) for line in found)


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a container with exactly ``env`` would read them."""
    import os

    for name in [n for n in os.environ if n.startswith("AGORA_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    check_sections(settings)  # the domains' sections parse as their own models too
    return settings


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds directly (``X`` or ``X | None``), if any."""
    candidates = [annotation, *get_args(annotation)] if get_origin(annotation) else [annotation]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def unknown_keys(model: type[BaseModel], value: dict[str, Any], path: str) -> Iterator[str]:
    """Keys of ``value`` that are no field of ``model`` (models that ignore extra keys would
    drop a misspelt one silently), recursively."""
    for key, item in value.items():
        field = model.model_fields.get(key)
        if field is None:
            yield f"{path}.{key}"
            continue
        inner = model_of(field.annotation)
        if inner is not None and isinstance(item, dict):
            yield from unknown_keys(inner, item, f"{path}.{key}")


def setting_problems(name: str, value: str) -> list[str]:
    """Why ``name=value`` is no setting of Settings (empty when it is one)."""
    prefix = Settings.model_config["env_prefix"]
    delimiter = Settings.model_config.get("env_nested_delimiter")
    field_path = name.removeprefix(prefix).lower()
    parts = field_path.split(delimiter) if delimiter else [field_path]
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = "Settings" if depth == 0 else f"{model.__name__} (under {parts[depth - 1]})"
            return [f"{name}: {where} has no field {part!r}"]
        # a domain's section is JSON on Settings, read as the model its domain owns
        inner = SECTIONS.get(part) if depth == 0 else None
        inner = inner or model_of(field.annotation)
        if depth < len(parts) - 1:
            if inner is None:
                return [f"{name}: {part} is no nested model"]
            model = inner
    if inner is not None and value.lstrip().startswith("{"):
        return [f"{name}: no field {key}" for key in unknown_keys(inner, json.loads(value), name)]
    return []


COMPOSE = load_compose()
AGORA_SERVICES = agora_services(COMPOSE)


def test_compose_parses_with_every_part_the_deployment_needs() -> None:
    services = COMPOSE["services"]
    roles = {name: command_of(s)[:1] for name, s in AGORA_SERVICES.items()}
    assert {"serve", "worker", "migrate", "train"} <= {r[0] for r in roles.values() if r}, roles
    images = {s.get("image", "").split(":")[0] for s in services.values()}
    assert {"postgres", "redis", "apache/spark"} <= images, images
    spark = [command_of(s) for s in services.values()]
    assert any(SPARK_MASTER_CLASS in c for c in spark) and any(
        SPARK_WORKER_CLASS in c for c in spark
    )
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in COMPOSE.get("volumes", {}), f"{name}: volume {source} undeclared"
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on {needed}, which is no service"


def test_stateful_services_keep_their_data_and_report_health() -> None:
    for name, mount in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        service = COMPOSE["services"][name]
        assert any(v.endswith(f":{mount}") for v in service["volumes"]), name
        assert service["healthcheck"]["test"], name
    for name, service in AGORA_SERVICES.items():
        waits = service.get("depends_on", {})
        assert waits.get("postgres", {}).get("condition") == "service_healthy", name
        if command_of(service)[0] != "migrate":
            migrated = waits.get("migrate", {}).get("condition")
            assert migrated == "service_completed_successfully", name


@pytest.mark.parametrize("name", sorted(AGORA_SERVICES))
def test_each_agora_service_runs_a_real_cli_command(name: str) -> None:
    """The command parses as the CLI parses it: subcommands, options and their values (typer
    carries its own click, whose groups have ``commands`` and whose errors are TyperExceptions)."""
    words = command_of(AGORA_SERVICES[name])
    command = typer.main.get_command(app)
    path = ["agora"]
    while hasattr(command, "commands") and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    assert not hasattr(command, "commands"), f"{name}: `{' '.join(path)}` needs a subcommand"
    try:
        command.make_context(" ".join(path), list(words))
    except typer.TyperException as exc:
        pytest.fail(f"{name}: `{' '.join(path + words)}`: {exc.format_message()}")


def test_images_are_the_projects_or_pinned_official_ones() -> None:
    version = PYPROJECT["project"]["version"]
    for name, service in COMPOSE["services"].items():
        image = service.get("image", "")
        if is_project_image(service):
            assert image in ("", f"agora:{version}"), f"{name}: {image} (project is {version})"
            continue
        repository, _, tag = image.rpartition(":")
        namespace = repository.rpartition("/")[0]
        assert namespace in OFFICIAL_NAMESPACES and "." not in namespace, f"{name}: {image}"
        assert re.match(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"


def test_every_agora_variable_is_a_setting_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    example = DEPLOY / "agora.env.example"
    named = {**dotenv_values(example), **commented_settings(example)}
    for service in COMPOSE["services"].values():
        named.update(service_env(service))
    problems = [
        problem
        for name, value in named.items()
        if name.startswith("AGORA_")
        for problem in setting_problems(name, value or "")
    ]
    assert not problems, problems
    for name, service in AGORA_SERVICES.items():
        settings = settings_from(service_env(service), monkeypatch)
        assert settings.database_url and settings.redis_url, name
    optional = {**service_env(AGORA_SERVICES["api"]), **commented_settings(example)}
    settings_from(optional, monkeypatch)  # the commented-out options parse when enabled


def test_secrets_are_placeholders_to_change() -> None:
    env = dotenv_values(DEPLOY / "agora.env.example")
    env.update(commented_settings(DEPLOY / "agora.env.example"))
    secret_fields = [
        f"AGORA_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation) or name == "api_key"
    ]
    secrets = [name for name in [*secret_fields, "POSTGRES_PASSWORD"] if name in env]
    assert "AGORA_API_KEY" in secrets and "POSTGRES_PASSWORD" in secrets, secrets
    for name in secrets:
        assert PLACEHOLDER in (env[name] or ""), f"{name} must be a {PLACEHOLDER} placeholder"
    for key in json.loads(env.get("AGORA_API_KEYS") or "{}"):
        assert PLACEHOLDER in key, "AGORA_API_KEYS must name placeholder keys"
    assert PLACEHOLDER in make_url(env["AGORA_DATABASE_URL"]).password


def test_ports_and_addresses_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    services = COMPOSE["services"]
    api = AGORA_SERVICES["api"]
    command = command_of(api)
    settings = settings_from(service_env(api), monkeypatch)
    port = int(option(command, "--port"))
    assert port == settings.port, f"--port {port}, AGORA_PORT {settings.port}"
    assert option(command, "--host") == "0.0.0.0", "the API must listen beyond the container"
    published = [interpolate(str(p)).rsplit(":", 1)[1] for p in api["ports"]]
    assert published == [str(port)], f"publishes {published}, listens on {port}"
    assert f"127.0.0.1:{port}/health" in " ".join(api["healthcheck"]["test"])

    database = make_url(settings.database_url)
    assert database.drivername == "postgresql+psycopg"
    postgres = services[database.host]
    assert postgres["image"].startswith("postgres:"), f"{database.host} is no postgres service"
    assert str(database.port) in [str(p) for p in postgres["expose"]]
    postgres_env = service_env(postgres)
    assert (database.username, database.password, database.database) == (
        postgres_env["POSTGRES_USER"],
        postgres_env["POSTGRES_PASSWORD"],
        postgres_env["POSTGRES_DB"],
    ), "the database URL must use the user, password and database postgres creates"

    redis = urlsplit(settings.redis_url)
    assert redis.scheme == "redis" and services[redis.hostname]["image"].startswith("redis:")
    assert str(redis.port) in [str(p) for p in services[redis.hostname]["expose"]]

    masters = {n: command_of(s) for n, s in services.items() if SPARK_MASTER_CLASS in command_of(s)}
    ((master_name, master),) = masters.items()
    master_url = f"spark://{option(master, '--host')}:{option(master, '--port')}"
    assert option(master, "--host") == master_name
    assert option(master, "--port") in [str(p) for p in services[master_name]["expose"]]
    trainers = [c for c in map(command_of, AGORA_SERVICES.values()) if c[:1] == ["train"]]
    assert trainers and all(option(c, "--engine") == "spark" for c in trainers)
    assert {option(c, "--spark-master") for c in trainers} == {master_url}
    for name, service in services.items():
        if SPARK_WORKER_CLASS in command_of(service):
            worker = command_of(service)
            assert worker[worker.index(SPARK_WORKER_CLASS) + 1] == master_url, name


def test_refresher_services_cover_every_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    workers = {n: command_of(s) for n, s in AGORA_SERVICES.items() if command_of(s)[0] == "worker"}
    assert workers, "no refresher service"
    feed = settings_from(service_env(AGORA_SERVICES["api"]), monkeypatch).feed
    shards = sorted(int(option(c, "--shard")) for c in workers.values() if "--shard" in c)
    if feed.refresher_shards > 1 or shards:
        assert shards == list(range(feed.refresher_shards)), (shards, feed.refresher_shards)
    assert not feed.refresh_in_serve, "refresher services run, so the API should run none"


def test_dockerfile_builds_the_cli_image_from_the_project() -> None:
    instructions = dockerfile_instructions()
    (base,) = [args for op, args in instructions if op == "FROM"]
    assert re.fullmatch(r"python:\d+\.\d+-slim(-\w+)?", base), base
    python = tuple(int(x) for x in re.findall(r"\d+", base)[:2])
    needed = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert python >= tuple(int(x) for x in needed.split(".")), (base, needed)

    context = (DEPLOY / AGORA_SERVICES["api"]["build"]["context"]).resolve()
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (context / source).exists(), f"COPY {source}: no such path in the context"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    copied = {s for op, a in instructions if op == "COPY" for s in a.split()[:-1]}
    assert copied <= {line.removeprefix("!") for line in ignore if line.startswith("!")}

    (entrypoint,) = [json.loads(args) for op, args in instructions if op == "ENTRYPOINT"]
    assert entrypoint == list(PYPROJECT["project"]["scripts"]), entrypoint
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"

    run = " ".join(args for op, args in instructions if op == "RUN")
    assert '".[spark]"' in run and "spark" in PYPROJECT["project"]["optional-dependencies"]
    pins = dict(re.findall(r'"([\w-]+)==([\w.]+)"', run))
    declared = {Requirement(r).name: Requirement(r) for r in PYPROJECT["project"]["dependencies"]}
    declared |= {
        Requirement(r).name: Requirement(r)
        for r in PYPROJECT["project"]["optional-dependencies"]["spark"]
    }
    for package, version in pins.items():
        assert package in declared and version in declared[package].specifier, (package, version)
    spark_images = {
        s["image"]
        for s in COMPOSE["services"].values()
        if s.get("image", "").startswith("apache/spark:")
    }
    assert {image.split(":")[1].split("-")[0] for image in spark_images} == {pins["pyspark"]}

    makefile = (REPO / "Makefile").read_text()
    java_packages = re.search(r"^java:.*?apt-get install -y -qq ([^;]+);", makefile, re.S | re.M)
    assert java_packages, "the Makefile's java target moved"
    for package in java_packages.group(1).split():
        assert package in run, f"{package} (make java) is not installed in the image"

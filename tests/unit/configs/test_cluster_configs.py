"""The Ray cluster launcher YAMLs: valid for the installed Ray, and they really start RustyRay."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from rustyray.launch import parse_args

CONFIGS = Path(__file__).resolve().parents[3] / "cluster_configs"
NAMES = ["aws", "gcp", "azure", "local"]
SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def load(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def launch_argv(cfg: dict) -> list[str]:
    lines = [c for c in cfg["head_start_ray_commands"] if "rustyray.launch" in c]
    assert len(lines) == 1, "exactly one head command runs the RustyRay launcher"
    argv = shlex.split(lines[0])
    assert argv[:3] == ["python", "-m", "rustyray.launch"]
    return argv[3:]


def test_every_provider_has_a_config():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_matches_the_schema_shipped_with_ray(name):
    jsonschema.validate(load(name), SCHEMA)


def test_the_schema_check_catches_a_bad_config():
    bad = copy.deepcopy(load("aws"))
    bad["head_start_commands"] = bad.pop("head_start_ray_commands")  # a typo'd key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


@pytest.mark.parametrize("name", NAMES)
def test_config_passes_rays_own_preparation_and_validation(name):
    """What `ray up` runs before touching any cloud: defaults filled in, node types consistent."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(load(name)))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("name", NAMES)
def test_head_starts_ray_then_the_launcher_detached(name):
    cfg = load(name)
    cmds = cfg["head_start_ray_commands"]
    start = next(i for i, c in enumerate(cmds) if "ray start --head" in c)
    launch = next(i for i, c in enumerate(cmds) if "rustyray.launch" in c)
    assert start < launch
    args = parse_args(launch_argv(cfg))  # the launcher accepts every flag
    assert args.address == "auto" and args.exit_after_start and args.nodes >= 3
    assert args.http_port == 8080
    if name != "local":
        assert args.host == "auto" and args.http_host == "0.0.0.0"  # reachable across machines


@pytest.mark.parametrize("name", NAMES)
def test_nodes_install_the_project(name):
    cfg = load(name)
    mounted = {remote for remote, local in cfg["file_mounts"].items() if local == "."}
    installs = [c for c in cfg["setup_commands"] if c.startswith("pip install")]
    assert installs and any(m in installs[0] for m in mounted), "the mounted checkout is pip-installed"


@pytest.mark.parametrize("name", NAMES)
def test_ports_are_documented(name):
    text = (CONFIGS / f"{name}.yaml").read_text()
    head = text.split("cluster_name:")[0]
    assert "8080" in head and "8265" in head and "Serve" in head and "dashboard" in head


def test_local_config_stays_on_loopback():
    cfg = load("local")
    assert cfg["provider"] == {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    args = parse_args(launch_argv(cfg))
    assert args.host == "127.0.0.1" and args.http_host == "127.0.0.1"


@pytest.mark.parametrize("name", ["aws", "gcp", "azure"])
def test_multi_machine_configs_need_no_shared_certificates(name):
    """Node actors on workers enrol with the CA holder over Ray (their keys never leave their host), so the
    cluster YAMLs no longer copy the state directory's certificates to every machine."""
    cfg = load(name)
    state_dir = str(parse_args(launch_argv(cfg)).state_dir)
    assert not any(state_dir in str(path) or "certs" in str(path) for path in cfg.get("cluster_synced_files", []))

"""ClusterConfig: every TOML table built by the one generic loader, and ``launch`` refusing a bad file (exit 2).

The tables are found by walking ``ClusterConfig``'s fields, so a table added later is covered by the typo and
wrong-type checks without editing this file.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import subprocess
import sys
import time
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustyray import config_loader
from rustyray.autodiscovery.anti_entropy import AntiEntropyConfig
from rustyray.autodiscovery.broadcast_core import BroadcastConfig
from rustyray.autodiscovery.config import (
    AntiEntropySettings,
    AutodiscoveryConfig,
    BroadcastSettings,
    MdnsSettings,
    SerfSettings,
)
from rustyray.autodiscovery.mdns_core import MdnsConfig
from rustyray.autodiscovery.serf import SerfConfig
from rustyray.config import ClusterConfig, NodeConfig, TransportConfig, node_config_from_toml
from rustyray.config_loader import FLATTEN, ConfigError, build
from rustyray.discovery.config import DnsDiscoveryConfig, EtcdDiscoveryConfig
from rustyray.membership.raft.config import RaftConfig
from rustyray.membership.swim.config import SwimConfig
from rustyray.pool.config import EvictionPolicy
from rustyray.routing.config import RoutingConfig

REPO = Path(__file__).resolve().parents[3]


# ------------------------------------------------------------------ walking the tables


def _unwrap(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def _is_table(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def tables(cls: type = ClusterConfig, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type]]:
    """Every (path, dataclass) a TOML table maps onto, below ``cls``; flattened fields share their parent's table."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap(hints[f.name])
        if _is_table(tp) and not f.metadata.get("flatten"):
            out.append(((*prefix, f.name), tp))
            out += tables(tp, (*prefix, f.name))
    return out


TABLES = tables()
TABLE_IDS = [".".join(path) for path, _ in TABLES]


def nest(path: tuple[str, ...], table: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = table
    for part in reversed(path):
        doc = {part: doc}
    return doc


def scalar_fields(cls: type) -> list[tuple[str, Any]]:
    """(key, type) of the settings a table for ``cls`` holds directly (flattened dataclasses included)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = _unwrap(hints[f.name])
        if f.metadata.get("flatten"):
            out += [kt for kt in scalar_fields(tp) if kt[0] not in f.metadata.get("exclude", ())]
        elif tp in (int, float, bool, str) or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
            out.append((f.name, tp))
    return out


def to_table(obj: Any) -> dict[str, Any]:
    """A config instance as the TOML table that gives it (the inverse of the loader)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue  # TOML has no null: leaving the key out gives the default None
        if dataclasses.is_dataclass(value):
            if f.metadata.get("flatten"):
                out.update((k, v) for k, v in to_table(value).items() if k not in f.metadata.get("exclude", ()))
            else:
                out[f.name] = to_table(value)
        elif isinstance(value, enum.Enum):
            out[f.name] = value.value
        elif isinstance(value, tuple):
            out[f.name] = [list(v) if isinstance(v, tuple) else v for v in value]
        else:
            out[f.name] = value
    return out


def test_the_walk_finds_every_table_and_sub_table():
    expected = {
        "cluster", "transport", "transport.reconnect", "heartbeat", "swim", "raft", "membership", "routing",
        "health", "pool", "pool.multiplex", "loadbalancer", "loadbalancer.circuit_breaker", "loadbalancer.stats",
        "loadbalancer.adaptive", "loadbalancer.consistent_hash", "loadbalancer.retry", "security", "discovery",
        "discovery.dns", "discovery.etcd", "discovery.consul", "discovery.kubernetes", "discovery.aws",
        "discovery.azure", "discovery.gcp", "autodiscovery", "autodiscovery.mdns", "autodiscovery.broadcast",
        "autodiscovery.beacon", "autodiscovery.serf", "autodiscovery.anti_entropy",
    }
    assert set(TABLE_IDS) == expected


# ------------------------------------------------------------------ typos and wrong types


@pytest.mark.parametrize(("path", "cls"), TABLES, ids=TABLE_IDS)
def test_a_mistyped_key_in_every_table_names_the_table_and_the_key(path, cls):
    known = sorted(k for k, _ in scalar_fields(cls)) or [f.name for f in dataclasses.fields(cls)]
    typo = known[0][:-1] + "_" + known[0][-1]  # "retry_max_s" -> "retry_max__s"
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_toml(nest(path, {typo: 1}))
    message = str(info.value)
    assert message.startswith(f"[{'.'.join(path)}] has no setting {typo!r}; known: "), message
    assert known[0] in message  # the known keys are listed


def test_the_routing_typo_of_the_brief():
    with pytest.raises(ConfigError, match=r"^\[routing\] has no setting 'retry_attemps'; known: .*retry_max_s"):
        ClusterConfig.from_toml({"routing": {"retry_attemps": 3}})


def test_an_unknown_top_level_table_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown table \[colour\]; known: autodiscovery, cluster, discovery"):
        ClusterConfig.from_toml({"colour": {"blue": 1}})


def _wrong_value(tp: Any) -> Any:
    return 7 if tp is str else "seven"


WRONG_TYPES = [(path, cls, key, tp) for path, cls in TABLES for key, tp in scalar_fields(cls)]


@pytest.mark.parametrize(("path", "cls", "key", "tp"), WRONG_TYPES,
                         ids=[".".join((*p, k)) for p, _, k, _ in WRONG_TYPES])
def test_a_wrong_type_for_every_setting_names_the_table_and_the_key(path, cls, key, tp):
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_toml(nest(path, {key: _wrong_value(tp)}))
    assert str(info.value).startswith(f"[{'.'.join(path)}] {key} must be"), str(info.value)


@pytest.mark.parametrize(("doc", "message"), [
    ({"pool": {"max_size": "x"}}, "[pool] max_size must be int, got str"),
    ({"routing": {"outbox_max_size": True}}, "[routing] outbox_max_size must be int, got bool"),
    ({"swim": {"lifeguard": 1}}, "[swim] lifeguard must be bool (true or false), got int"),
    ({"transport": {"capabilities": "lz4"}}, "[transport] capabilities must be a list, got str"),
    ({"transport": {"capabilities": ["lz4", 3]}}, "[transport] capabilities[1] must be str, got int"),
    ({"pool": {"eviction_policy": "Random"}}, "[pool] eviction_policy must be one of 'LRU', 'IdleTimeout'"),
    ({"routing": 5}, "[routing] must be a table, got int"),
    ({"loadbalancer": {"retry": {"strategy": "Never"}}}, "[loadbalancer.retry] strategy must be one of"),
    ({"discovery": {"etcd": {"lease_ttl_s": "10"}}}, "[discovery.etcd] lease_ttl_s must be int, got str"),
    ({"autodiscovery": {"serf": {"tags": {"role": 1}}}}, "[autodiscovery.serf] tags.role must be str, got int"),
    ({"autodiscovery": {"serf": {"compression": "yes"}}}, "[autodiscovery.serf] compression must be bool"),
])
def test_wrong_types(doc, message):
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_toml(doc)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(("doc", "message"), [
    ({"routing": {"retry_initial_s": 2.0, "retry_max_s": 1.0}}, "[routing] retry_max_s must be >= retry_initial_s"),
    ({"pool": {"min_size": 5, "max_size": 2}}, "[pool] min_size"),
    ({"transport": {"tcp_port": 70000}}, "[transport] tcp_port must be 0..65535"),
    ({"transport": {"reconnect": {"base_ms": 0}}}, "[transport.reconnect] base_ms must be positive"),
    ({"raft": {"preset": "wan"}}, "[raft] preset must be one of lan, fast"),
    ({"raft": {"heartbeat_tick": 20}}, "[raft] election_tick: must be greater than heartbeat_tick"),
    ({"discovery": {"join": ["zookeeper"]}}, "[discovery] join names unknown backend(s) zookeeper"),
    ({"discovery": {"etcd": {"endpoints": ["ftp://x"]}}}, "[discovery.etcd] endpoints must be"),
    ({"autodiscovery": {"beacon": {"enabled": True}}}, "[autodiscovery] beacon.enabled requires"),
    ({"security": {"acl_default_action": "MAYBE"}}, "[security] acl_default_action: expected ALLOW or DENY"),
    ({"cluster": {"name": ""}}, "[cluster] name must not be empty"),
    ({"autodiscovery": {"serf": {"label": "x" * 256}}}, "[autodiscovery.serf] label must be at most 255 bytes"),
])
def test_values_the_subsystem_refuses_name_the_table(doc, message):
    with pytest.raises(ConfigError) as info:
        ClusterConfig.from_toml(doc)
    assert str(info.value).startswith(message), str(info.value)


IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@given(st.sampled_from(TABLES), IDENT)
def test_any_unknown_key_is_refused_by_name(table, key):
    path, cls = table
    known = {f.name for f in dataclasses.fields(cls)} | {k for k, _ in scalar_fields(cls)}
    if key in known:
        return
    with pytest.raises(ConfigError, match=re.escape(f"[{'.'.join(path)}] has no setting {key!r}")):
        ClusterConfig.from_toml(nest(path, {key: 1}))


# ------------------------------------------------------------------ defaults and round trips


def test_an_empty_file_gives_the_documented_defaults():
    config = ClusterConfig.from_toml({})
    assert config == ClusterConfig()
    assert config.cluster.name == "rustyray"
    assert config.swim == SwimConfig.lan()  # the live service's preset, not memberlist's field defaults
    assert config.raft.for_node("n1") == RaftConfig.lan("n1")
    assert config.routing == RoutingConfig()
    assert config.pool.pool.min_size == 1 and config.pool.pool.max_size == 20
    assert config.pool.multiplex.max_streams == 100
    assert config.health.phi_threshold == 8.0 and config.health.phi_floor == 4.0
    assert config.membership.bootstrap_expect == 0
    assert config.discovery.configured() == []
    mdns = config.autodiscovery.mdns
    assert mdns.enabled is False and mdns.core(None).interfaces == ("127.0.0.1",)
    assert config.autodiscovery.broadcast.broadcast_address == "127.255.255.255"
    assert config.security.default_connection_limit == 256


def test_defaults_round_trip_through_a_toml_table():
    assert ClusterConfig.from_toml(to_table(ClusterConfig())) == ClusterConfig()


def test_a_full_config_round_trips():
    doc = {
        "cluster": {"name": "prod"},
        "transport": {"capabilities": ["zstd"], "reconnect": {"base_ms": 50, "cap_ms": 1000}},
        "swim": {"probe_interval": 1, "suspicion_mult": 4},
        "raft": {"preset": "fast", "election_tick": 20},
        "routing": {"retry_initial_s": 0.05, "retry_max_s": 0.2, "receive_log_size": 16},
        "health": {"tick_ms": 50, "auto_recover": False},
        "pool": {"max_size": 6, "eviction_policy": "LRU", "maintenance_interval_sec": 0.1,
                 "multiplex": {"max_streams": 4}},
        "loadbalancer": {"circuit_breaker": {"failure_threshold": 3}, "retry": {"strategy": "Fixed"}},
        "discovery": {"join": [], "dns": {"nameservers": ["127.0.0.1:53"]},
                      "aws": {"tag_filters": {"cluster": "prod"}}},
        "autodiscovery": {"serf": {"tags": {"role": "db"}}, "anti_entropy": {"interval_s": 5}},
    }
    config = ClusterConfig.from_toml(doc)
    assert config.swim.probe_interval == 1.0 and isinstance(config.swim.probe_interval, float)
    assert config.swim.probe_timeout == SwimConfig.lan().probe_timeout  # the preset keeps what is not set
    assert config.raft.for_node("x") == RaftConfig(id="x", election_tick=20, heartbeat_tick=3, tick_interval=0.015)
    assert config.pool.pool.eviction_policy is EvictionPolicy.LRU and config.pool.pool.min_size == 1
    assert config.transport.capabilities == ("zstd",)
    assert config.discovery.dns == DnsDiscoveryConfig(nameservers=("127.0.0.1:53",))
    assert config.discovery.aws is not None and config.discovery.aws.tag_filters == (("cluster", "prod"),)
    assert config.discovery.configured() == ["dns", "aws"]
    assert ClusterConfig.from_toml(to_table(config)) == config


def test_health_phi_threshold_follows_the_heartbeat_unless_set():
    config = ClusterConfig.from_toml({"heartbeat": {"phi_threshold": 6.0}})
    assert (config.health.phi_threshold, config.health.phi_floor) == (6.0, 3.0)
    config = ClusterConfig.from_toml({"heartbeat": {"phi_threshold": 6.0}, "health": {"phi_threshold": 10}})
    assert (config.health.phi_threshold, config.health.phi_floor) == (10.0, 4.0)


def test_the_readme_example_is_a_valid_config():
    text = (REPO / "README.md").read_text()
    block = re.search(r"## The config file.*?```toml\n(.*?)```", text, re.S)
    assert block is not None
    config = ClusterConfig.from_toml(tomllib.loads(block.group(1)))
    assert config.cluster.name == "rustydb-prod" and config.discovery.configured() == ["dns", "etcd"]


# ------------------------------------------------------------------ NodeConfig


def test_node_config_carries_the_typed_tables():
    doc = {"cluster": {"name": "c1"}, "routing": {"outbox_max_size": 8}, "membership": {"bootstrap_expect": 3}}
    cfg = node_config_from_toml("n1", doc, state_dir="/tmp/x", overrides={"host": "127.0.0.2"})
    assert cfg.cluster.routing.outbox_max_size == 8 and cfg.cluster.membership.bootstrap_expect == 3
    assert cfg.cluster.transport == cfg.transport and cfg.transport.host == "127.0.0.2"
    assert cfg.cluster.cluster.name == cfg.cluster_name == "c1"
    assert cfg.section("routing") == {"outbox_max_size": 8}  # the raw tables still work
    with pytest.raises(ConfigError, match=r"\[routing\] has no setting 'outbox'"):
        node_config_from_toml("n1", {"routing": {"outbox": 1}}, state_dir="/tmp/x")


def test_a_hand_made_node_config_derives_the_same_typed_tables():
    sections = {"routing": {"outbox_max_size": 8}, "pool": {"multiplex": {"max_streams": 4}}}
    by_hand = NodeConfig(node_id="n1", cluster_name="c1", transport=TransportConfig(tls=False), sections=sections)
    loaded = node_config_from_toml("n1", {**sections, "cluster": {"name": "c1"}, "transport": {"tls": False}},
                                   state_dir=by_hand.state_dir)
    assert by_hand.cluster == loaded.cluster


def test_a_hand_made_node_config_leaves_discovery_and_autodiscovery_errors_to_their_services():
    cfg = NodeConfig(node_id="n1", sections={"discovery": {"colour": "blue"},
                                             "autodiscovery": {"mdns": {"enabeld": True}}})
    assert cfg.cluster.discovery == ClusterConfig().discovery  # the service reports the raw table's problem
    assert cfg.section("autodiscovery") == {"mdns": {"enabeld": True}}
    with pytest.raises(ConfigError):  # the other tables are typed at once
        NodeConfig(node_id="n1", sections={"routing": {"colour": "blue"}})


# ------------------------------------------------------------------ the loader itself


@dataclasses.dataclass(frozen=True)
class _Leaf:
    size: int = 1
    ratio: float = 0.5

    def validate(self) -> None:
        if self.size < 0:
            raise ValueError("size must be >= 0")


@dataclasses.dataclass(frozen=True)
class _Root:
    flat: _Leaf = dataclasses.field(default_factory=lambda: _Leaf(size=2), metadata=FLATTEN)
    named: dict[str, _Leaf] = dataclasses.field(default_factory=dict)
    maybe: _Leaf | None = None
    pairs: tuple[tuple[str, str], ...] = ()


def test_loader_flattened_mapped_optional_and_pairs():
    root = build(_Root, {"ratio": 1, "named": {"a": {"size": 3}}, "maybe": {}, "pairs": {"k": "v"}}, "root")
    assert root == _Root(flat=_Leaf(size=2, ratio=1.0), named={"a": _Leaf(size=3)}, maybe=_Leaf(),
                         pairs=(("k", "v"),))
    with pytest.raises(ConfigError, match=r"^\[root\.named\.a\] size must be >= 0$"):
        build(_Root, {"named": {"a": {"size": -1}}}, "root")
    with pytest.raises(ConfigError, match=r"^\[root\] size must be >= 0$"):
        build(_Root, {"size": -1}, "root")
    with pytest.raises(ConfigError, match=r"^\[root\] has no setting 'flat'; known: maybe, named, pairs, ratio"):
        build(_Root, {"flat": {}}, "root")
    assert build(_Leaf, {"ratio": 2}, "leaf", base=_Leaf(size=9)) == _Leaf(size=9, ratio=2.0)


def test_the_autodiscovery_tables_hold_exactly_the_keys_the_service_reads():
    """Each sub-table: its core config's fields, minus what the node supplies, plus the service's own keys;
    the core's fields are declared once (a flattened field), so a key added to a core is a key of its table."""

    def names(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def keys(cls: type) -> set[str]:
        return set(config_loader._known(cls))

    assert keys(MdnsSettings) == names(MdnsConfig) - {"cluster_name"}
    assert keys(BroadcastSettings) == names(BroadcastConfig) - {"cluster_name"} | {"allowed_broadcast_addresses",
                                                                                       "secret_file"}
    assert keys(SerfSettings) == names(SerfConfig) | {"enabled", "tags", "retransmit_mult", "recent_events", "wire",
                                                      "bind", "port", "join", "keyring_file", "compression", "label"}
    assert keys(AntiEntropySettings) == names(AntiEntropyConfig) | {"enabled", "interval_s", "request_timeout_s"}


def test_flattened_core_configs_take_their_keys_from_the_table_and_refuse_excluded_ones():
    serf = build(AutodiscoveryConfig, {"serf": {"event_buffer": 64, "wire": "serf"},
                                       "mdns": {"enabled": True},
                                       "anti_entropy": {"depth": 2, "interval_s": 5}}, "autodiscovery")
    assert serf.serf.layer.event_buffer == 64 and serf.serf.wire == "serf"
    assert serf.mdns.core("c") == MdnsConfig(enabled=True, interfaces=("127.0.0.1",), cluster_name="c")
    assert serf.anti_entropy.tree.depth == 2 and serf.anti_entropy.interval_s == 5.0
    with pytest.raises(ConfigError, match=r"^\[autodiscovery\.mdns\] has no setting 'cluster_name'"):
        build(AutodiscoveryConfig, {"mdns": {"cluster_name": "x"}}, "autodiscovery")
    with pytest.raises(ConfigError, match=r"^\[autodiscovery\.serf\] event_buffer must be >= 1"):
        build(AutodiscoveryConfig, {"serf": {"event_buffer": 0}}, "autodiscovery")
    with pytest.raises(ConfigError, match=r"^\[autodiscovery\.anti_entropy\] interval_s must be > 0"):
        build(AutodiscoveryConfig, {"anti_entropy": {"interval_s": 0}}, "autodiscovery")


def test_backend_configs_are_importable_from_their_adapters_too():
    from rustyray.discovery.dns_srv import DnsDiscoveryConfig as FromAdapter
    from rustyray.discovery.etcd import EtcdDiscoveryConfig as EtcdFromAdapter

    assert FromAdapter is DnsDiscoveryConfig and EtcdFromAdapter is EtcdDiscoveryConfig


# ------------------------------------------------------------------ launch


BAD_FILES = [
    ("[routing]\nretry_attemps = 3\n", ["[routing]", "retry_attemps"]),
    ('[pool]\nmax_size = "big"\n', ["[pool]", "max_size", "must be int"]),
    ("[discovery.etcd]\nendpoints = ['ftp://x']\n", ["[discovery.etcd]", "endpoints"]),
    ("[autodiscovery.mdns]\nenabeld = true\n", ["[autodiscovery.mdns]", "enabeld"]),
    ("[routing\n", ["bad.toml", "line 1"]),
]


@pytest.mark.parametrize(("text", "words"), BAD_FILES, ids=[w[1] for _, w in BAD_FILES])
def test_launch_refuses_a_bad_config_before_ray_with_exit_2(tmp_path, text, words):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "rustyray.launch", "--config", str(bad), "--nodes", "1",
                          "--state-dir", str(tmp_path / "state")],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert time.monotonic() - t0 < 30
    assert out.stderr.startswith("[rustyray] config error: ")
    for word in words:
        assert word in out.stderr, out.stderr
    assert "Ray" not in out.stdout and not (tmp_path / "state").exists()  # nothing started, nothing written


def test_launch_checks_the_config_without_importing_ray(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[routing]\nretry_attemps = 3\n")
    code = ("import sys\nfrom rustyray.launch import main\n"
            f"rc = main(['--config', {str(bad)!r}, '--nodes', '1'])\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\nsys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "[routing] has no setting 'retry_attemps'" in out.stderr


def test_launch_reports_a_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    out = subprocess.run([sys.executable, "-m", "rustyray.launch", "--config", str(missing)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "nope.toml" in out.stderr

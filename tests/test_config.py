"""Configuration: defaults < TOML < environment < flags, safe defaults, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultd.config import Config, load_config
from vaultd.errors import InvalidArgument


def test_safe_defaults() -> None:
    c = Config()
    assert c.listen == "127.0.0.1:7443"
    assert c.require_client_cert is True
    assert c.metrics_listen.startswith("127.0.0.1:")


def test_precedence(tmp_path: Path) -> None:
    f = tmp_path / "vaultd.toml"
    f.write_text('listen = "127.0.0.1:1000"\nmap_size = 1048576\nrequire_client_cert = true\n'
                 'data_dir = "/srv/a"\n')
    c = load_config(f, env={})
    assert (c.listen, c.map_size, c.data_dir) == ("127.0.0.1:1000", 1 << 20, Path("/srv/a"))
    c = load_config(f, env={"VAULTD_LISTEN": "127.0.0.1:2000", "VAULTD_MAP_SIZE": "2048"})
    assert (c.listen, c.map_size) == ("127.0.0.1:2000", 2048)
    c = load_config(f, env={"VAULTD_LISTEN": "127.0.0.1:2000"},
                    overrides={"listen": "127.0.0.1:3000", "map_size": None})
    assert (c.listen, c.map_size) == ("127.0.0.1:3000", 1 << 20)


def test_bad_values_are_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="VAULTD_MAP_SIZE"):
        load_config(env={"VAULTD_MAP_SIZE": "lots"})
    with pytest.raises(InvalidArgument, match="VAULTD_REQUIRE_CLIENT_CERT"):
        load_config(env={"VAULTD_REQUIRE_CLIENT_CERT": "maybe"})
    f = tmp_path / "c.toml"
    f.write_text('lisen = "x"\n')
    with pytest.raises(InvalidArgument, match="unknown setting 'lisen'"):
        load_config(f, env={})
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})


def test_validate_requires_tls_files_unless_dev(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="tls_cert"):
        Config(data_dir=tmp_path).resolved().validate()
    c = Config(data_dir=tmp_path, dev=True).resolved()
    c.validate()
    assert c.tls_cert == tmp_path / "pki" / "server.pem"
    assert c.policy == tmp_path / "policy.toml"


def test_max_map_size(tmp_path: Path) -> None:
    assert Config().max_map_size == 0  # off by default: the map never grows past map_size
    f = tmp_path / "vaultd.toml"
    f.write_text("map_size = 1048576\nmax_map_size = 4194304\n")
    assert load_config(f, env={}).max_map_size == 4 << 20
    assert load_config(f, env={"VAULTD_MAX_MAP_SIZE": "8388608"}).max_map_size == 8 << 20
    c = load_config(f, env={}, overrides={"max_map_size": 16 << 20})
    assert c.max_map_size == 16 << 20
    c = Config(data_dir=tmp_path, dev=True, map_size=8 << 20, max_map_size=4 << 20).resolved()
    with pytest.raises(InvalidArgument, match="max_map_size .* is smaller than map_size"):
        c.validate()
    with pytest.raises(InvalidArgument, match="max_map_size must not be negative"):
        Config(data_dir=tmp_path, dev=True, max_map_size=-1).resolved().validate()

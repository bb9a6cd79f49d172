"""The project's documents stay true: compose.yaml validates, the AsyncAPI document is current, the demo runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
         ROOT / "compose.yaml"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_asyncapi_document_is_generated_from_the_code() -> None:
    from reintegration.contract_docs import render_asyncapi

    committed = (ROOT / "docs" / "asyncapi.json").read_text()
    assert committed == render_asyncapi(), "docs/asyncapi.json is stale: run `reintegration asyncapi`"


def test_contract_reference_page_is_generated_from_the_code() -> None:
    from reintegration.contracts_page import render_contracts

    page = render_contracts()
    assert (ROOT / "docs" / "contracts.md").read_text() == page, "docs/contracts.md is stale: run `reintegration asyncapi`"
    for tag in ("work_potential_estimated.v1", "feed.trajectory.v1", "store_unavailable", "employer.trajectory_duty"):
        assert tag in page


def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    """The README's first command, small: the embedded nats-server, SQLite, intake, relay and seeded cases."""
    result = subprocess.run(
        [sys.executable, "-m", "reintegration", "demo", "--cases", "60", "--data-dir", "demo"],  # relative, as typed
        capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "160", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every reply is the one the rules call for" in result.stdout
    assert "all published" in result.stdout
    assert (tmp_path / "demo" / "intake.sqlite").exists()
    # The ledger summary shows the kinds recorded, each with its rule: among them the employer's return-to-work
    # premium, the Terug Naar Werk 2.5% reduction and rehabilitation cost reimbursements.
    kinds = re.search(r"ledger kinds recorded: (.*)", result.stdout)
    assert kinds is not None, result.stdout[-3000:]
    assert {"premium", "reduction", "reimbursement"} <= set(kinds[1].split(", "))
    for kind, rule in [("premium", r"return_to_work_premium\.20(23|24)"),
                       ("reduction", r"return_to_work\.missed_examination_reduction"),
                       ("reimbursement", r"rehabilitation\.costs")]:
        assert re.search(rf"{kind}\W+{rule}\W+[1-9]", result.stdout), (kind, result.stdout[-3000:])
    # Again in the same folder: the demo starts over (the same seed's reports would otherwise all be duplicates).
    again = subprocess.run(
        [sys.executable, "-m", "reintegration", "demo", "--cases", "20", "--data-dir", "demo"],
        capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "160", "PYTHONPATH": str(ROOT)},
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]


def test_the_demo_clears_only_a_folder_a_demo_wrote(tmp_path: Path) -> None:
    import pytest

    from lab.demo import DEMO_MARKER, fresh_demo_folder

    mine = tmp_path / "demo"
    fresh_demo_folder(mine)
    (mine / "intake.sqlite").write_bytes(b"old")
    fresh_demo_folder(mine)
    assert sorted(p.name for p in mine.iterdir()) == [DEMO_MARKER]
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "intake.sqlite").write_bytes(b"production")
    with pytest.raises(SystemExit, match="no demo wrote"):
        fresh_demo_folder(foreign)
    assert (foreign / "intake.sqlite").read_bytes() == b"production"


def _interpolated(environment: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose gives it with nothing set on the host: ``${X:-default}`` is the default;
    ``${X:?...}`` (a secret the host must set) stands for a value given."""
    def value(text: str) -> str:
        text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
        return re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", r"<\1>", text)

    return {key: value(str(v)) for key, v in environment.items()}


def _compose() -> dict:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((ROOT / "compose.yaml").read_text())


def test_compose_runs_nats_with_the_parties_accounts_and_each_service_as_itself(tmp_path: Path) -> None:
    """The services `up` runs, each with its own credentials file and nothing else of the parties volume; the init
    script lays the volume out as the mounts expect, and nats.conf with its include passes `nats-server -t`."""
    from services.registry import BY_NAME as SERVICES
    from shared.infra.parties import Role, load_parties

    compose = _compose()["services"]
    commands = {" ".join(entry.args): name for name, entry in SERVICES.items()}
    images = {name: s for name, s in compose.items() if s.get("image") == "reintegration:latest" and name != "parties"}
    assert {commands[" ".join(s["command"])] for s in images.values()} == set(SERVICES)
    parties = load_parties(ROOT / "deploy" / "parties.toml")
    assert not parties.dev and {p.id for p in parties.of(Role.SERVICE)} == {*SERVICES, "operator"}
    for name, service in images.items():
        own = commands[" ".join(service["command"])]
        assert service["depends_on"]["parties"] == {"condition": "service_completed_successfully"}, name
        creds = service["environment"]["REINTEGRATION_NATS_CREDENTIALS"]
        mounts = [v for v in service["volumes"] if isinstance(v, dict) and v["source"] == "parties"]
        assert mounts == [{"type": "volume", "source": "parties", "target": "/run/reintegration/parties",
                           "read_only": True, "volume": {"subpath": own}}], name
        assert creds == f"/run/reintegration/parties/service-{own}.creds", name
        assert service["environment"]["REINTEGRATION_CIPHER_KEY"].startswith("${REINTEGRATION_CIPHER_KEY:?"), name
    audit = compose["audit"]
    parties_file = audit["environment"]["REINTEGRATION_PARTIES_FILE"]
    assert f"${{REINTEGRATION_PARTIES:-./deploy/parties.toml}}:{parties_file}:ro" in audit["volumes"]
    for node in NODES:
        nats = compose[node]
        assert nats["depends_on"]["parties"] == {"condition": "service_completed_successfully"}
        [server] = [v for v in nats["volumes"] if isinstance(v, dict) and v["source"] == "parties"]
        assert (server["target"], server["volume"]["subpath"]) == ("/etc/nats/parties", "server")
    assert "include ./parties/accounts.conf" in (ROOT / "deploy" / "nats.conf").read_text()

    # The init script as the `parties` service runs it, into a folder standing for the volume.
    init = compose["parties"]
    assert init["entrypoint"] == ["sh", "/etc/reintegration/parties-init.sh"]
    volume = tmp_path / "volume"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PARTIES_FILE": str(ROOT / "deploy" / "parties.toml"), "PARTIES_OUT": str(volume)}

    def run_init() -> str:
        result = subprocess.run(["sh", ROOT / "deploy" / "parties-init.sh"], env=env, capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return (volume / "all" / "service-audit.creds").read_text()

    assert run_init() == run_init()  # run again (a restart of the deployment): the keys are kept
    for name in SERVICES:
        folder = volume / name
        assert [p.name for p in folder.iterdir()] == [f"service-{name}.creds"], name
        assert (folder / f"service-{name}.creds").read_text() == (volume / "all" / f"service-{name}.creds").read_text()
        assert (folder / f"service-{name}.creds").stat().st_mode & 0o077 == 0
    etc = tmp_path / "etc-nats"
    etc.mkdir()
    (etc / "nats.conf").write_text((ROOT / "deploy" / "nats.conf").read_text())
    (etc / "parties").symlink_to(volume / "server")  # where compose mounts the `server` subpath
    for node in NODES:  # every node's configuration: the one file with the node's name
        check = subprocess.run([Path(sys.executable).parent / "nats-server", "-t", "-c", etc / "nats.conf"],
                               capture_output=True, text=True, check=False,
                               env={**os.environ, **{k: ("a-key" if "${" in v else v)  # compose substitutes
                                                     for k, v in compose[node]["environment"].items()}})
        assert check.returncode == 0, check.stdout + check.stderr


NODES = ("nats-1", "nats-2", "nats-3")


def test_compose_runs_a_three_node_cluster_with_r3_streams_and_two_replicas_of_each_derived_service() -> None:
    """The cluster shape of ``reintegration up --cluster``: three clustered nodes with their own stores, every service
    given every node, R3 streams, and deadlines and benefits as two replicas that split the partitions."""
    import re

    from shared.events.subjects import partition_filters
    from shared.infra.settings import Settings

    compose = _compose()["services"]
    assert [name for name in compose if name.startswith("nats")] == list(NODES)
    conf = (ROOT / "deploy" / "nats.conf").read_text()
    routes = re.findall(r"nats-route://([a-z0-9-]+):6222", conf)
    assert sorted(routes) == list(NODES) and "server_name: $NATS_SERVER_NAME" in conf and "listen: 0.0.0.0:6222" in conf
    names = [compose[node]["environment"]["NATS_SERVER_NAME"] for node in NODES]
    assert names == list(NODES)
    # Every node's store encrypted at rest, the key from the environment only; monitoring on the host's loopback.
    assert "cipher: chachapoly" in conf and "key: $REINTEGRATION_JETSTREAM_KEY" in conf
    assert all(":?" in compose[node]["environment"]["REINTEGRATION_JETSTREAM_KEY"] for node in NODES)
    assert all(port.startswith("127.0.0.1:") for node in NODES for port in compose[node]["ports"] if port.endswith(":8222"))
    stores = [next(v for v in compose[node]["volumes"] if isinstance(v, str) and v.endswith(":/data")) for node in NODES]
    assert len(set(stores)) == 3, "each node needs its own JetStream store"
    ports = [compose[node]["ports"][0] for node in NODES]
    assert len(set(ports)) == 3

    ours = {name: s for name, s in compose.items() if s.get("image") == "reintegration:latest" and name != "parties"}
    for name, service in ours.items():
        settings = Settings.from_env(_interpolated(service["environment"]))
        assert settings.nats_servers == [f"nats://{node}:4222" for node in NODES], name
        assert settings.stream_replicas == 3, name
        assert set(service["depends_on"]) >= {*NODES, "postgres"}, name
        assert settings.store == "postgres", name
    for derived in ("deadlines", "benefits"):
        replicas = {name: Settings.from_env(_interpolated(s["environment"])).partition for name, s in ours.items()
                    if s["command"] == ["serve", derived]}
        assert replicas == {f"{derived}-0": (0, 2), f"{derived}-1": (1, 2)}
        covered = [f for index, count in replicas.values() for f in partition_filters(index, count)]
        assert len(covered) == len(set(covered)) == 9  # 8 partitions and what was stored before them, once each
    others = [name for name, s in ours.items() if s["command"][-1] not in ("deadlines", "benefits")]
    assert all(Settings.from_env(_interpolated(ours[n]["environment"])).partition == (0, 1) for n in others)


def test_compose_waits_for_readiness_and_monitors_every_service() -> None:
    """Each service serves its probes and metrics on 9464, its healthcheck asks /readyz, the services wait for
    healthy NATS nodes (and the hop before them), and the monitoring profile's Prometheus scrapes every one of them
    with the alert rules and Grafana's dashboard that tests/integration/test_telemetry.py checks against a scrape."""
    from ruamel.yaml import YAML

    compose = _compose()["services"]
    images = {name: s for name, s in compose.items() if s.get("image") == "reintegration:latest" and name != "parties"}
    for name, service in images.items():
        assert service["environment"]["REINTEGRATION_METRICS_PORT"] == "9464", name
        assert "http://127.0.0.1:9464/readyz" in " ".join(service["healthcheck"]["test"]), name
        assert all(service["depends_on"][node] == {"condition": "service_healthy"} for node in NODES), name
    assert compose["relay"]["depends_on"]["intake"] == {"condition": "service_healthy"}
    assert compose["audit"]["depends_on"]["deadlines-0"] == {"condition": "service_healthy"}
    for node in NODES:
        assert "/healthz?js-enabled-only=true" in " ".join(compose[node]["healthcheck"]["test"])
    assert compose["prometheus"]["profiles"] == compose["grafana"]["profiles"] == ["monitoring"]
    config = YAML(typ="safe").load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    [dns] = job["dns_sd_configs"]
    assert set(dns["names"]) == set(images) and dns["port"] == 9464
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    rules = YAML(typ="safe").load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert {r["alert"] for r in rules["groups"][0]["rules"]} == {
        "ConsumerLagging", "DeadLetterWaiting", "TimersFiringLate", "RelayBehind", "ServiceNotReady"}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "reintegration.json").read_text())
    assert all(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])

"""TLS is always verified; a CA bundle setting trusts an operator's own certificate authority."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator_core.http_tools import HttpToolRuntime, load_tools_file
from orchestrator_core.inner_agent import CallContext, InnerAgent
from orchestrator_core.simulator import NetworkSimulator
from orchestrator_core.tools import ToolContext, default_registry
from tests.orchestrator_core.http_tools.api import ApiState, serve
from tests.workorder_db import WorkOrderDB


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA of the test's own and a certificate it signed for 127.0.0.1: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("TechAssist test CA"))
        .issuer_name(_name("TechAssist test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def https_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"))
    with serve(ApiState(), tls=(cert, key)) as base:
        yield base, ca


def tools_file(directory: Path, base: str) -> Path:
    path = directory / "tools.yaml"
    path.write_text(
        "tools:\n"
        "  light_level:\n"
        "    description: Read the light level.\n"
        f"    url: {base}/lines/{{order_id}}/light\n"
        "    inputs: {order_id: {type: string}}\n"
        "    outputs: {rx_dbm: /levels/0/rx_dbm}\n"
        "    read_only: true\n"
        "    idempotent: true\n"
    )
    return path


async def run(tools: Path, db: WorkOrderDB, ca_bundle: Path | None) -> tuple[bool, str, int]:
    runtime = HttpToolRuntime(load_tools_file(tools), {}, ca_bundle=ca_bundle)
    registry = default_registry()
    runtime.register(registry)
    agent = InnerAgent(registry, ToolContext(db, NetworkSimulator()), db.audit, backoff=0.001)
    call = CallContext(session_id="s1", order_id="ORD-1005", step_id="light", attempt=1)
    try:
        result = await agent.execute_task("light_level", {"order_id": "ORD-1005"}, call)
    finally:
        await runtime.aclose()
    return result.ok, result.message, result.attempts


async def test_a_certificate_from_an_unknown_authority_is_a_misconfiguration(
    https_api: tuple[str, Path], tmp_path: Path
) -> None:
    database = WorkOrderDB(tmp_path / "workorders.db")
    try:
        ok, message, attempts = await run(tools_file(tmp_path, https_api[0]), database, None)
    finally:
        database.close()
    assert not ok and attempts == 1  # retrying cannot fix a certificate
    assert "TLS certificate is not trusted" in message and "needs fixing" in message


async def test_the_ca_bundle_setting_trusts_the_operators_authority(
    https_api: tuple[str, Path], tmp_path: Path
) -> None:
    database = WorkOrderDB(tmp_path / "workorders.db")
    try:
        ok, message, _ = await run(tools_file(tmp_path, https_api[0]), database, https_api[1])
    finally:
        database.close()
    assert ok, message

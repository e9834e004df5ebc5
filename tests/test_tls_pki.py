"""
Throwaway certificates for the TLS tests, made afresh in a temporary
directory for every test session: nothing private is ever committed. A root
CA the tests trust, a CA nobody trusts, and leaf certificates with chosen
names, issuers and validity. Keys are EC P-256 (quick to make).
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


def _pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key, password=None):
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@dataclass
class Authority:
    name: str
    certificate: x509.Certificate
    key: object
    path: Path            # its certificate, PEM: what a client trusts


@dataclass
class Issued:
    certificate: Path     # PEM: the leaf, then the chain given
    key: Path
    leaf: x509.Certificate
    private_key: object


class PKI:
    """Makes CAs and certificates under `directory`; `root` is trusted by the tests, `stranger` by nobody."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.root = self.authority("wsrelay test root CA")
        self.stranger = self.authority("wsrelay test unknown CA")

    def _name(self, common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def authority(self, name, issuer=None):
        key = ec.generate_private_key(ec.SECP256R1())
        signer = issuer or None
        builder = (
            x509.CertificateBuilder()
            .subject_name(self._name(name))
            .issuer_name(signer.certificate.subject if signer else self._name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - DAY)
            .not_valid_after(self.now + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if signer:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()), critical=False)
        certificate = builder.sign(signer.key if signer else key, hashes.SHA256())
        path = self.dir / (name.replace(" ", "-") + ".pem")
        path.write_bytes(_pem(certificate))
        return Authority(name, certificate, key, path)

    def issue(self, filename, names, issuer=None, valid_from=-1.0, valid_days=90.0, chain=(),
              combined=False, password=None):
        """
        A server certificate for `names` (DNS names or IP addresses), signed by
        `issuer` (default: root), valid from now + valid_from days for
        valid_days days. `chain` certificates follow the leaf in its file;
        `combined` puts the key in that file too.
        """
        import ipaddress

        issuer = issuer or self.root
        key = ec.generate_private_key(ec.SECP256R1())
        alt = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        start = self.now + datetime.timedelta(days=valid_from)
        builder = (
            x509.CertificateBuilder()
            .subject_name(self._name(names[0] if names else filename))
            .issuer_name(issuer.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                           critical=False)
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        leaf = builder.sign(issuer.key, hashes.SHA256())
        cert_path = self.dir / f"{filename}.pem"
        key_path = cert_path if combined else self.dir / f"{filename}.key"
        body = _pem(leaf) + b"".join(_pem(c) for c in chain)
        if combined:
            cert_path.write_bytes(body + _key_pem(key, password))
        else:
            cert_path.write_bytes(body)
            key_path.write_bytes(_key_pem(key, password))
        return Issued(cert_path, key_path, leaf, key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


def test_the_throwaway_pki_issues_what_was_asked(pki):
    issued = pki.issue("sample", ["a.test", "127.0.0.1"], valid_days=3)
    san = issued.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.test"]
    assert issued.leaf.issuer == pki.root.certificate.subject
    assert b"PRIVATE KEY" in issued.key.read_bytes() and b"PRIVATE" not in issued.certificate.read_bytes()
    left = issued.leaf.not_valid_after_utc - pki.now
    assert datetime.timedelta(days=1.9) < left < datetime.timedelta(days=2.1)

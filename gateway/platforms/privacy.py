"""Patient data minimisation: only the fields a platform needs leave the hospital.

A destination lists the patient fields it needs (``patient_fields``); every other
field of :class:`~canonical.model.Patient` stays home. Identifiers (ID card,
insurance, phone, patient and visit numbers) are sent as HMAC-SM3 under the
hospital's own secret unless the destination says the platform needs them in clear
(``identifiers_in_clear``), so the platform can link a patient's purchases without
learning who they are, and two hospitals' hashes of one person differ. Names are
never hashed (a name hash is easily reversed from a list of names): a listed name
leaves in clear, except to a destination that takes hashed data only
(``hash_identifiers``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from canonical.model import PATIENT_FIELDS, PATIENT_IDENTIFIERS, Patient
from gateway.platforms.signing import hmac_sm3

__all__ = ["IDENTIFIER_FIELDS", "PATIENT_FIELDS", "PatientPolicy", "patient_payload"]

IDENTIFIER_FIELDS = PATIENT_IDENTIFIERS


@dataclass(frozen=True, slots=True)
class PatientPolicy:
    """What one destination may receive about patients."""

    fields: tuple[str, ...] = ()
    identifiers_in_clear: bool = False  # the platform needs them in clear (said explicitly)
    names: bool = True  # False: the platform takes hashed data only, a name never leaves
    secrets: Mapping[str, bytes] | None = None  # hospital code → hash secret

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(PATIENT_FIELDS)
        if unknown:
            raise ValueError(f"unknown patient field(s) {sorted(unknown)}; "
                             f"choose from {', '.join(PATIENT_FIELDS)}")


def _hashed(secret: bytes, value: str) -> str:
    return hmac_sm3(secret, value.encode()).hex()


def patient_payload(patient: Patient | None, hospital_id: str, policy: PatientPolicy,
                    names: Mapping[str, str]) -> dict[str, str]:
    """The platform keys and values for the allowed fields of ``patient``.

    Args:
        patient: the event's patient, or None.
        hospital_id: whose secret hashes the identifiers.
        policy: the destination's policy.
        names: our field name → the platform's key (fields it has no key for are dropped).

    Returns:
        Only the listed fields that the platform has a key for and that are not empty.

    Raises:
        ValueError: an identifier is to be hashed but the hospital has no hash secret.
    """
    if patient is None or not policy.fields:
        return {}
    out: dict[str, str] = {}
    for name in _wanted(policy.fields, names):
        value = getattr(patient, name)
        if not value:
            continue
        if name not in IDENTIFIER_FIELDS:
            if not policy.names:
                continue  # a name is not sent when the platform takes hashed data
        elif not policy.identifiers_in_clear:
            value = _hashed(_secret(policy, hospital_id), value)
        out[names[name]] = value
    return out


def _secret(policy: PatientPolicy, hospital_id: str) -> bytes:
    secret = (policy.secrets or {}).get(hospital_id)
    if not secret:
        raise ValueError(f"hospital {hospital_id} has no hash_secret configured; "
                         "patient identifiers cannot be hashed")
    return secret


def _wanted(fields: Iterable[str], names: Mapping[str, str]) -> list[str]:
    return [f for f in fields if f in names]

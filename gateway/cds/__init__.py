"""CDS Hooks 2.0.1 delivery of 集采 warnings into prescribing."""

from gateway.cds.auth import AuthError, TrustedClient, refuse_replay, verify_bearer
from gateway.cds.cards import NATIONAL_DRUG_SYSTEM, build_cards, department_of, draft_lines
from gateway.cds.service import CdsSettings, cds_app, services_document

__all__ = [
    "NATIONAL_DRUG_SYSTEM",
    "AuthError",
    "CdsSettings",
    "TrustedClient",
    "build_cards",
    "cds_app",
    "department_of",
    "draft_lines",
    "refuse_replay",
    "services_document",
    "verify_bearer",
]

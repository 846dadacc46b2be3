"""CDS Hooks 2.0.1 delivery of 集采 warnings into prescribing."""

from gateway.cds.auth import AuthError, JtiCache, TrustedClient, verify_bearer
from gateway.cds.cards import NATIONAL_DRUG_SYSTEM, build_cards, department_of, draft_lines
from gateway.cds.service import CDS_LEDGER, CdsSettings, cds_app, services_document

__all__ = [
    "CDS_LEDGER",
    "NATIONAL_DRUG_SYSTEM",
    "AuthError",
    "CdsSettings",
    "JtiCache",
    "TrustedClient",
    "build_cards",
    "cds_app",
    "department_of",
    "draft_lines",
    "services_document",
    "verify_bearer",
]

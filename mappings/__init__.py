"""The crosswalk (对码) from hospital item codes to national codes, match suggestions,
import/export (CSV, XLSX, FHIR ConceptMap) and the audited editing API."""

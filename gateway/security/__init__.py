"""Authentication, authorisation, TLS and audit."""

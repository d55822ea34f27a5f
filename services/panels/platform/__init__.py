"""Cross-cutting pieces shared by every feature; no business rules live here."""

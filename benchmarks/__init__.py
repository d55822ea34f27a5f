"""HTTP benchmarks of the Panels service against bare-Litestar ceilings (see README.md)."""

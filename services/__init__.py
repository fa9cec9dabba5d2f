"""Agora's domain services: one package per service, each owning one Postgres schema."""

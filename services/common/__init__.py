"""Thin, typed client helpers shared by the services: one module per backend."""

"""Test support shared by the project's tests: real servers (`servers`) and bounded waits."""

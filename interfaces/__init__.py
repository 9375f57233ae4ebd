"""User-facing interfaces of the observatory (terminal UI and friends)."""

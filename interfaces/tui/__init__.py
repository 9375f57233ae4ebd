"""Terminal UI of the observatory: prerequisite check now, launcher and dashboard later."""

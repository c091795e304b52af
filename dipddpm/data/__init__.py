"""Images, degradations and datasets (no downloads unless the user asks for them)."""

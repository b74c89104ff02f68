"""Tasks: what differs between NLU and sentence classification (labels, head, losses, metrics)."""

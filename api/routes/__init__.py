"""One module per resource: score, model, health, metrics."""

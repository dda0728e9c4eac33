"""The scoring API: a FastAPI service that scores transactions with the latest verified model."""

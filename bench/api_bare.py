"""The HTTP stack's own limit: a FastAPI endpoint that returns a constant (same uvicorn settings as the API).

uvicorn bench.api_bare:app --loop uvloop --http httptools --workers N
"""

from fastapi import FastAPI, Response

app = FastAPI()
_BODY = b'{"fraud_probability":0.01,"is_fraud":false}'


@app.post("/v1/score")
async def score() -> Response:
    return Response(_BODY, media_type="application/json")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}

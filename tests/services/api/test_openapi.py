"""The API's own description (OpenAPI, /docs) speaks to its users: what each operation takes
and answers, never the names the team gives the documents it was built from."""

from __future__ import annotations

import json
import re

import httpx


async def test_the_api_description_has_no_team_jargon(api_client: httpx.AsyncClient) -> None:
    spec = (await api_client.get("/openapi.json")).json()
    text = json.dumps(spec)
    assert re.findall(r".{40}\bseed\b.{40}", text, re.IGNORECASE) == []
    assert "/uploads/{filename}" in spec["paths"]
    image_put = spec["paths"]["/api/v1/alerts/{alert_id}/image"]["put"]
    assert set(image_put["requestBody"]["content"]) == {
        "application/json", "image/jpeg", "image/png", "image/webp",
    }  # fmt: skip

"""What the api serves to browsers: the operations dashboard at `/`, the API docs (`/docs`,
`/redoc`, GraphiQL) and every asset they load, from `static/` (no CDN)."""

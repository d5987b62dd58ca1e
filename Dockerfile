# The map page's MapLibre GL JS comes from the npm registry (web/package-lock.json).
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
# Pango for WeasyPrint (the communes' printable digests as PDF).
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libpango-1.0-0 \
    libpangoft2-1.0-0 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
ENV UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
COPY --from=web /web/node_modules web/node_modules
RUN uv sync --frozen --no-dev
CMD ["geo-engine", "serve", "--host", "0.0.0.0"]

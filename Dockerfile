FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/opik-runners.db \
    OPIK_RUNNERS_BIND=0.0.0.0:5173

WORKDIR /app
# The pinned dependencies first (a layer that changes only with them), then the package itself;
# requirements.txt's last line installs the checkout in editable mode, which an image does not want.
COPY requirements.txt .
RUN grep -v '^-e ' requirements.txt > /tmp/pinned.txt && pip install --no-cache-dir -r /tmp/pinned.txt
COPY pyproject.toml README.md ./
COPY opik_runners ./opik_runners
RUN pip install --no-cache-dir --no-deps . && rm -rf /app/opik_runners /app/build

RUN useradd --system --uid 10001 --home-dir /app runner \
    && mkdir -p /data && chown runner /data
USER runner

VOLUME ["/data"]
EXPOSE 5173
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:5173/is-alive/ping', timeout=2).status != 200)"

CMD ["opik-runners", "serve"]

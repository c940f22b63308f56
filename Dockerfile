FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/opik-runners.db \
    OPIK_RUNNERS_BIND=0.0.0.0:5173

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY *.py ./
COPY static ./static
RUN useradd --system --uid 10001 --home-dir /app runner \
    && mkdir -p /data && chown runner /data
USER runner

VOLUME ["/data"]
EXPOSE 5173
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:5173/is-alive/ping', timeout=2).status != 200)"

CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]

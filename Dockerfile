# The opik-runners image: `docker build -t opik-runners .`, then
# `docker run -p 127.0.0.1:5173:5173 -v opik-data:/data opik-runners` (docs/how-to/container.md).
#
# The base is Debian's slim image with Debian's own python3 (3.11 on bookworm), not the
# official python:3.11-slim, which CI cannot pull. The trade: Debian's Python is patched and
# updated by Debian rather than tracking CPython's latest patch release, and it costs an apt
# step per stage; in return the image builds from nothing but Debian's packages and PyPI, so
# CI builds this same file on a bookworm root file system it makes itself (BASE names it).
ARG BASE=debian:bookworm-slim

# -- build: a venv with the pinned dependencies and the package (no pip left in it)
FROM ${BASE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/opik-runners
# The pinned dependencies first (a layer that changes only with them), then the package;
# requirements.txt's last line installs a checkout in editable mode, which an image does not want.
COPY requirements.txt /src/
RUN grep -v '^-e ' /src/requirements.txt > /src/pinned.txt \
    && /opt/opik-runners/bin/pip install --no-cache-dir --disable-pip-version-check -r /src/pinned.txt
COPY pyproject.toml README.md /src/
COPY opik_runners /src/opik_runners
RUN /opt/opik-runners/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src \
    && /opt/opik-runners/bin/pip uninstall --yes --disable-pip-version-check pip setuptools

# -- the image: Debian's python3 and the venv, run as a non-root user
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/opik-runners /opt/opik-runners

ENV PATH=/opt/opik-runners/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/opik-runners.db \
    OPIK_RUNNERS_BIND=0.0.0.0:5173

# uid 10001: a bind-mounted /data must be writable by it (chown 10001 DIR on the host).
RUN groupadd --gid 10001 runner \
    && useradd --uid 10001 --gid runner --home-dir /data --no-create-home --shell /usr/sbin/nologin runner \
    && mkdir /data && chown runner:runner /data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 5173

# /is-alive/ping where OPIK_RUNNERS_BIND says the server listens (a wildcard host on loopback),
# with the image's own Python.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; h, _, p = os.environ.get('OPIK_RUNNERS_BIND', '0.0.0.0:5173').split(',')[0].rpartition(':'); h = h.strip('[]'); h = '127.0.0.1' if h in ('', '0.0.0.0', '::') else f'[{h}]' if ':' in h else h; u.urlopen(f'http://{h}:{p}/is-alive/ping', timeout=4).read()"]

CMD ["opik-runners", "serve"]

# lvscare image: slim Python, runtime dependencies only, no build tools left in.
#   docker build -t lvscare-py:0.1.0 .
# The install steps are those of the README's "Install" section, word for word
# (tests/lvscare/test_dockerfile.py checks that they agree).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lvscare lvscare
COPY bootstrap bootstrap
# Every dependency ships wheels for CPython 3.11: no compiler in either stage.
RUN python3 -m venv /opt/lvscare \
    && /opt/lvscare/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
# kmod: modprobe ip_vs after a reboot; nftables: the masquerade rule of --mode link.
RUN apt-get update \
    && apt-get install -y --no-install-recommends kmod nftables \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/lvscare /opt/lvscare
RUN ln -s /opt/lvscare/bin/lvscare /usr/local/bin/lvscare
# The pod's root file system is read-only: no .pyc to write; logs line by line.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["lvscare"]
CMD ["care", "--help"]

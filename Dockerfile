# lvscare image: slim Python, runtime dependencies only, no build tools left in.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lvscare lvscare
COPY bootstrap bootstrap
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# kmod: modprobe for ip_vs after a reboot; nftables: the masquerade rule of --mode link.
RUN apt-get update \
    && apt-get install -y --no-install-recommends kmod nftables \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENTRYPOINT ["lvscare"]
CMD ["care", "--help"]

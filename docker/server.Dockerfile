# The control plane: registry, REST API, rollouts, dashboard, remote inference (CPU).
#   docker build -f docker/server.Dockerfile -t vla-flywheel/server .
FROM python:3.11-slim AS server

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FLYWHEEL_DATA_DIR=/data HF_HUB_OFFLINE=1
WORKDIR /app

# Dependencies first (cached while only the code changes). constraints.txt pins torch; the server
# loads policies for remote inference, so it needs the train extra's torch (CPU wheel here).
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p data_store vla sim robot_agent trainer serving flywheel \
    && pip install -c constraints.txt --extra-index-url https://download.pytorch.org/whl/cpu ".[serve,train]" \
    && pip uninstall -y vla-flywheel
COPY data_store data_store
COPY vla vla
COPY sim sim
COPY robot_agent robot_agent
COPY trainer trainer
COPY serving serving
COPY flywheel flywheel
RUN pip install --no-deps -c constraints.txt . && useradd --create-home --uid 1000 flywheel \
    && mkdir -p /data && chown flywheel /data
USER flywheel
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["flywheel", "serve", "run", "--host", "0.0.0.0", "--port", "8000"]

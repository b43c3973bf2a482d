# Trainer workers and the nightly schedule (Celery): SFT, world model, reward model, imagined GRPO.
#   docker build -f docker/trainer.Dockerfile -t vla-flywheel/trainer .
# The base image carries CUDA and the torch that constraints.txt pins, so pip keeps it.
ARG TORCH_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
FROM ${TORCH_IMAGE} AS trainer

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FLYWHEEL_DATA_DIR=/data HF_HUB_OFFLINE=1 MUJOCO_GL=egl
WORKDIR /app

# EGL for MuJoCo rendering (evaluation runs the simulated arm headless).
RUN apt-get update && apt-get install -y --no-install-recommends libegl-mesa0 libgl1-mesa-dri libglx-mesa0 \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p data_store vla sim robot_agent trainer serving flywheel \
    && python -c "import torch; print('torch', torch.__version__)" \
    && pip install -c constraints.txt ".[robot,train]" && pip uninstall -y vla-flywheel
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

# A worker on both queues; a GPU machine runs the solo pool (CUDA cannot be used after a fork).
CMD ["flywheel", "worker", "--queues", "gpu,cpu", "--pool", "solo"]

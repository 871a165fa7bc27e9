# syntax=docker/dockerfile:1
# GPU trainer / teacher image: conf-profile with the gpu extra (vLLM + DeepSpeed) on a CUDA base.
#  - KubernetesPodOperator tasks run `conf-profile train sft|rl ...` in it (ENTRYPOINT is `conf-profile`);
#  - the vLLM teacher service runs it with the entrypoint overridden to `vllm serve MODEL ...`.
#
#   docker build -f docker/trainer.Dockerfile -t conf-profile/trainer:0.1.0 .
#
# torch comes from PyPI's default index (a CUDA build that ships its own CUDA libraries, the build vLLM's wheels
# are compiled against), so the base image only has to carry the CUDA user-space basics; the host/node needs an
# NVIDIA driver recent enough for that CUDA release and the NVIDIA container toolkit / device plugin.
ARG CUDA_IMAGE=nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG TORCH_VERSION=2.13.0
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface \
    MLFLOW_DISABLE_TELEMETRY=true \
    # DeepSpeed: never JIT-compile CUDA ops at run time (the runtime base has no nvcc). ZeRO-2 with the
    # HF/torch optimizer needs none; for CPU offload (cpu_adam) build on a -devel CUDA_IMAGE instead.
    DS_BUILD_OPS=0

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev ca-certificates curl git \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "${VIRTUAL_ENV}" \
    && pip install --no-cache-dir --upgrade pip wheel

# torch first, in its own layer (largest, changes least).
COPY constraints.txt /opt/conf-profile/constraints.txt
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}"

# constraints.txt is the CPU venv's known-good set, applied here too, except numpy: vLLM needs mistral_common,
# which caps numpy below 2.4 on Python <= 3.12 (this base has 3.12), so numpy is left to the resolver.
COPY . /opt/conf-profile/src
RUN sed '/^numpy==/d' /opt/conf-profile/constraints.txt > /opt/conf-profile/constraints-gpu.txt \
    && pip install --no-cache-dir -c /opt/conf-profile/constraints-gpu.txt "/opt/conf-profile/src[gpu]" \
    && conf-profile --help >/dev/null \
    && python -c "from importlib.metadata import version as v; print('vllm', v('vllm'), 'torch', v('torch'))" \
    && mkdir -p /cache/huggingface /work \
    && chown -R 1000:0 /cache /work \
    && chmod -R g=u /cache /work

# uid 1000 (the base image's `ubuntu` user), group 0 so OpenShift-style arbitrary uids can write too.
USER 1000
ENV HOME=/work
WORKDIR /work
ENTRYPOINT ["conf-profile"]
CMD ["--help"]

# syntax=docker/dockerfile:1
# Airflow image for conf-profile: the official Airflow 3 image plus this package (airflow extra), pinned by
# constraints.txt. DAGs and plugins are baked in for Kubernetes; docker-compose mounts ./dags and ./plugins
# over them so local edits show up without a rebuild.
#
#   docker build -t conf-profile/airflow:0.1.0 .
#
# The build context is the repository root, filtered by .dockerignore.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# CPU wheels for torch: heavy training runs in the trainer image (docker/trainer.Dockerfile) on GPU pods, so the
# scheduler/worker image stays small. The default PyPI torch wheel is a multi-GB CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

USER airflow
WORKDIR /opt/airflow

# 1. torch first (its own layer: it changes least and is the biggest).
COPY --chown=airflow:0 constraints.txt /opt/conf-profile/constraints.txt
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# 2. the package with the airflow extra. apache-airflow is pinned to the base image's version so pip never
#    swaps Airflow itself; everything else follows constraints.txt (the known-good set the tests run on).
COPY --chown=airflow:0 . /opt/conf-profile/src
RUN pip install --no-cache-dir \
        -c /opt/conf-profile/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "/opt/conf-profile/src[airflow]" \
    && conf-profile --help >/dev/null

# 3. DAGs and plugins baked in (Kubernetes has no bind mounts). A fresh clone may lack an empty folder, so copy
#    only what exists.
RUN set -e; cd /opt/conf-profile/src; \
    mkdir -p /opt/airflow/dags /opt/airflow/plugins; \
    if [ -d dags ]; then cp -a dags/. /opt/airflow/dags/; fi; \
    if [ -d plugins ]; then cp -a plugins/. /opt/airflow/plugins/; fi

# The settings file (CONF_PROFILE_CONFIG) and credentials come from the deployment (compose / Helm), never
# from the image.
ENV MLFLOW_DISABLE_TELEMETRY=true

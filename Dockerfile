# pretrax and JAX for one kind of accelerator: an image GKE pods train in at once, instead of
# installing the stack at every (re)start (launch.submit --target=gke --image=…):
#
#   docker build -t REGISTRY/pretrax:TAG .                             # Cloud TPU (default)
#   docker build -t REGISTRY/pretrax:TAG --build-arg JAX_EXTRA=cuda12 .  # NVIDIA GPUs
#   docker push REGISTRY/pretrax:TAG
#   python -m launch.submit --target=gke --image=REGISTRY/pretrax:TAG --name=… \
#       --tpu_type=… --tpu_topology=… -- launch.pretrain --config=bert.py:base \
#       --workdir=gs://BUCKET/run
#
# The training command runs in /opt/pretrax, a copy of this checkout, so relative config paths
# (launch/configs/bert.py:base) resolve as in the checkout; bare names (bert.py:base) do anywhere.
FROM python:3.11-slim

# tpu (libtpu) or cuda12 (CUDA 12 wheels): an extra of pyproject.toml.
ARG JAX_EXTRA=tpu
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/pretrax
COPY . .
RUN pip install --no-cache-dir ".[${JAX_EXTRA}]"

# syntax=docker/dockerfile:1.7
# dbembed container image (CPU) for AWS Batch, ECS or any Docker host.
#
#   docker build -t dbembed:latest .
#   docker run --rm -v /sqlite-load-test:/sqlite-load-test:ro \
#       -e DBEMBED_DATABASE_URL=postgresql://... dbembed:latest run /sqlite-load-test --json
#
# Two stages: the builder installs into a virtualenv (compilers and pip caches stay
# behind); the runtime stage copies only that virtualenv.  torch comes from the CPU-only
# wheel index (~200 MB instead of ~2.5 GB with CUDA).  For a GPU image see Dockerfile.gpu.

ARG PYTHON_VERSION=3.12
ARG TORCH_VERSION=2.13.0

FROM python:${PYTHON_VERSION}-slim AS builder
ARG TORCH_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU index, so the dependency resolver below never pulls CUDA wheels.
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md /src/
COPY src /src/src
# aws: boto3 (Bedrock, Secrets Manager, IAM auth, S3); static: model2vec; schedule: croniter.
RUN pip install "/src[aws,static,schedule]" \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && python -c "import dbembed, torch; assert not torch.cuda.is_available()"

FROM python:${PYTHON_VERSION}-slim AS runtime
# Amazon RDS/Aurora CA bundle for sslmode=verify-full (all regions).
ADD --chmod=0644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
RUN groupadd --system --gid 10001 dbembed \
 && useradd --system --uid 10001 --gid dbembed --create-home --home-dir /home/dbembed dbembed
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    DBEMBED_DATA_DIR=/home/dbembed/data \
    DBEMBED_DB_SSLROOTCERT=/etc/ssl/certs/rds-global-bundle.pem
USER 10001:10001
WORKDIR /home/dbembed
ENTRYPOINT ["dbembed"]
CMD ["--help"]

# syntax=docker/dockerfile:1.7
# dbembed's chat/memory/search API as an AWS Lambda container image (deploy/dbembed-chat-api.yaml).
#
#   docker build -f deploy/lambda.Dockerfile -t dbembed-lambda:latest .
#
# The AWS Lambda Python base image brings the runtime interface client; the handler is the
# FastAPI app behind Mangum.  It reaches Aurora through the RDS Data API (boto3), so no VPC
# and no database driver set-up per invocation; embeddings come from Bedrock.  torch (a core
# dependency for the local model) is the CPU-only wheel and is never imported on this path.
ARG PYTHON_VERSION=3.12
ARG TORCH_VERSION=2.13.0
FROM public.ecr.aws/lambda/python:${PYTHON_VERSION}
ARG TORCH_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md /tmp/dbembed/
COPY src /tmp/dbembed/src
# Into the image's site-packages, next to the CPU torch above (so the resolver keeps it).
RUN pip install "/tmp/dbembed[aws,api]" \
 && rm -rf /tmp/dbembed \
 && python -c "import dbembed.api.lambda_handler, torch; assert not torch.cuda.is_available()"
ENV HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false DBEMBED_DATA_DIR=/tmp/dbembed DBEMBED_LOG_FORMAT=json
CMD ["dbembed.api.lambda_handler.handler"]

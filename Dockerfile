# LoRA Pilot appliance: the trainer daemon and web services under supervisord, /workspace as the volume.
#   docker build -t lorapilot .
#   docker run --gpus all -p 7861:7861 -p 7878:7878 -v lorapilot:/workspace lorapilot
# SSH (key-only, port 22) runs when PUBLIC_KEY holds your public key: -e PUBLIC_KEY="$(cat ~/.ssh/id_ed25519.pub)"
# RunPod template: docker/runpod-template.json (docs/runpod.md).
# With ComfyUI inside (supervisord program comfyui, port 8188, models from /workspace/models):
#   docker build --build-arg WITH_COMFYUI=1 -t lorapilot:comfyui .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# The CUDA build of torch: its version is requirements/torch.txt's (the same as scripts/bootstrap's).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG WITH_COMFYUI=0
ARG COMFYUI_REF=v0.8.1

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    LORAPILOT_WORKSPACE=/workspace \
    LORAPILOT_SKELETON=/opt/lorapilot/workspace_skel \
    LORAPILOT_DOCS=/opt/lorapilot/docs \
    HF_HOME=/workspace/cache/huggingface

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# System packages: Python, tini as PID 1, openssh-server for the optional SSH (PUBLIC_KEY; the
# package's own host keys are deleted: each volume gets its own in config/ssh/, none is baked into the
# image). Versions come from the pinned base image's Ubuntu release; pinning each package would break
# the build at every Ubuntu point update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev tini ca-certificates libgl1 libglib2.0-0 git openssh-server \
    && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub \
    && python3 -m venv "$VIRTUAL_ENV"

# The locks first: they change least often. torch (the CUDA build, with the CUDA libraries and
# triton it needs) from the torch index at requirements/torch.txt's version, then every other
# dependency from the hashed lock (scripts/lock): the same versions on every build, checked.
WORKDIR /opt/lorapilot
COPY requirements ./requirements
RUN pip install -r requirements/torch.txt --index-url "${TORCH_INDEX}"
# A layer of its own: a new lock reinstalls these, not the gigabytes of torch above.
# hadolint ignore=DL3059
RUN pip install --require-hashes -r requirements/runtime.txt

# ComfyUI, optionally, at a pinned release, in the same environment: its requirements under the lock's
# versions as constraints (a conflict fails the build rather than changing LoRA Pilot's libraries), and
# torchvision/torchaudio from the torch index to match the torch above.
# hadolint ignore=DL3013
RUN if [ "${WITH_COMFYUI}" = "1" ]; then \
        git clone --depth 1 --branch "${COMFYUI_REF}" https://github.com/comfyanonymous/ComfyUI /opt/ComfyUI \
        && sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*==[^ ]*\).*/\1/p' requirements/runtime.txt requirements/torch.txt \
            > /tmp/lock-constraints.txt \
        && pip install -r /opt/ComfyUI/requirements.txt -c /tmp/lock-constraints.txt \
            --extra-index-url "${TORCH_INDEX}" \
        && rm /tmp/lock-constraints.txt; \
    fi

# The package itself, the supervisor configuration, the workspace skeleton, the docs ControlPilot
# serves at /docs/ (LORAPILOT_DOCS) and the entrypoint. The package is built with the locked
# setuptools (--no-build-isolation), so nothing unpinned is fetched here either.
COPY services ./services
COPY supervisord.conf ./
COPY workspace_skel ./workspace_skel
COPY docs ./docs
COPY docker/entrypoint.sh /usr/local/bin/lorapilot-entrypoint
RUN pip install --no-deps --no-build-isolation . \
    && chmod 0755 /usr/local/bin/lorapilot-entrypoint \
    && mkdir -p /opt/lorapilot/.run /workspace

VOLUME /workspace
EXPOSE 7861 7878 8188 22

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["lorapilot-appliance", "health"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/lorapilot-entrypoint"]

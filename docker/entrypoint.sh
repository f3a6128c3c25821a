#!/usr/bin/env bash
# Container start (PID 1 is tini): lay out /workspace without touching a user's files, settle the
# appliance password, pass the Hugging Face token on, then hand over to supervisord.
set -euo pipefail

export LORAPILOT_WORKSPACE="${LORAPILOT_WORKSPACE:-/workspace}"
export LORAPILOT_BIND="${LORAPILOT_BIND:-0.0.0.0}"
export LORAPILOT_TAGPILOT_PORT="${LORAPILOT_TAGPILOT_PORT:-7861}"
export LORAPILOT_CONTROLPILOT_PORT="${LORAPILOT_CONTROLPILOT_PORT:-7878}"
export LORAPILOT_COMFYUI_PORT="${LORAPILOT_COMFYUI_PORT:-8188}"

# A RunPod secret the account does not have arrives as its literal placeholder: treat it as unset.
for name in LORAPILOT_PASSWORD HF_TOKEN hf_token; do
    if [[ "${!name:-}" == "{{ RUNPOD_SECRET_"* ]]; then
        echo "[lorapilot] $name names a RunPod secret this account does not have (${!name}); ignoring it" >&2
        unset "$name"
    fi
done

# RunPod templates pass secrets in lower case; the services read HF_TOKEN. Never echo it.
if [ -z "${HF_TOKEN:-}" ] && [ -n "${hf_token:-}" ]; then
    export HF_TOKEN="${hf_token}"
fi
unset hf_token

lorapilot-appliance bootstrap --workspace "$LORAPILOT_WORKSPACE"

# ComfyUI starts with the appliance only when the image was built with it (WITH_COMFYUI=1),
# unless LORAPILOT_COMFYUI_AUTOSTART=false says otherwise.
LORAPILOT_COMFYUI_AUTOSTART="${LORAPILOT_COMFYUI_AUTOSTART:-$(lorapilot-appliance comfyui --installed || true)}"
export LORAPILOT_COMFYUI_AUTOSTART

# SSH (the sshd program, key-only) only when PUBLIC_KEY holds a public key, as RunPod passes it.
LORAPILOT_SSH_AUTOSTART="${LORAPILOT_SSH_AUTOSTART:-$(lorapilot-appliance sshd --wanted || true)}"
export LORAPILOT_SSH_AUTOSTART
# A Ray node (LORAPILOT_RAY_ROLE=head|worker): whether the ray and trainpilot programs start, where
# the daemon finds Ray, Ray's token. An unknown role stops the start here, with the fix.
eval "$(lorapilot-appliance ray-node --workspace "$LORAPILOT_WORKSPACE" --exports)"

mkdir -p /opt/lorapilot/.run
exec supervisord -n -c /opt/lorapilot/supervisord.conf

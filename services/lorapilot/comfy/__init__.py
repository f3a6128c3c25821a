"""The ComfyUI bridge: LoRA hand-off into models/loras and test renders through ComfyUI's HTTP API."""

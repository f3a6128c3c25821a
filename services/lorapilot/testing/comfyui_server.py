"""A local stand-in for ComfyUI's HTTP + websocket API, for tests only (aiohttp: the `dev` extra).

ComfyUI is not installable from the package registries, so the bridge's client is tested against
this server, which implements the documented contract of Comfy-Org/ComfyUI `server.py` for the
routes LoRA Pilot uses (each also under `/api`): `POST /prompt` with validation against the
`/object_info` document (unknown node class, missing required input, value not in a list, bad link
→ HTTP 400 with `error` and `node_errors`), `GET /history/{id}`, `GET /view`, `GET /object_info[/{class}]`,
`GET /system_stats`, `GET /queue` (the prompts running: a hung one stays there), `POST /upload/image`
and `/ws?clientId=` with `status`, `execution_start`,
`executing`, `progress`, `executed`, `execution_success` / `execution_error` messages, ending with
`executing` whose node is null. Each `SaveImage` writes a real PNG whose colour depends on the seed
and on the LoRAs and strengths upstream of it, so different strengths give different images.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image

from lorapilot.testing.comfyui_nodes import object_info


@dataclass
class Behaviour:
    """Switches tests flip: a prompt that never finishes, or one that fails in a node."""

    hang: bool = False
    fail_class: str | None = None
    step_delay: float = 0.0


@dataclass
class FakeComfyUI:
    models: Path
    output: Path
    input: Path
    behaviour: Behaviour = field(default_factory=Behaviour)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: list[dict[str, Any]] = field(default_factory=list)  # every accepted workflow
    running: dict[str, list[Any]] = field(default_factory=dict)  # prompt id → its `/queue` entry
    sockets: dict[str, list[web.WebSocketResponse]] = field(default_factory=dict)
    counter: int = 0
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeComfyUI:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake ComfyUI did not start")
        return self

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app())
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}"
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        async def close_sockets() -> None:
            for group in self.sockets.values():
                for ws in group:
                    await ws.close()

        asyncio.run_coroutine_threadsafe(close_sockets(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def app(self) -> web.Application:
        app = web.Application()
        routes = [
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/history/{prompt_id}", self.get_history),
            ("GET", "/view", self.get_view),
            ("GET", "/object_info", self.get_object_info),
            ("GET", "/object_info/{node_class}", self.get_object_info),
            ("GET", "/system_stats", self.get_system_stats),
            ("GET", "/queue", self.get_queue),
            ("POST", "/upload/image", self.post_upload),
            ("GET", "/ws", self.websocket),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, f"/api{path}", handler)
        return app

    # -- routes ---------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return object_info(self.models, self.input)

    async def get_object_info(self, request: web.Request) -> web.Response:
        info = self.info()
        name = request.match_info.get("node_class")
        if name is None:
            return web.json_response(info)
        return web.json_response({name: info[name]} if name in info else {})

    async def get_system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "system": {
                    "os": "posix",
                    "python_version": "3.11",
                    "comfyui_version": "fake",
                    "ram_total": 1 << 34,
                    "ram_free": 1 << 33,
                    "embedded_python": False,
                },
                "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0}],
            }
        )

    async def get_queue(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": list(self.running.values()), "queue_pending": []})

    async def get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def get_view(self, request: web.Request) -> web.StreamResponse:
        kind = request.query.get("type", "output")
        root = {"output": self.output, "input": self.input}.get(kind)
        name, sub = request.query.get("filename", ""), request.query.get("subfolder", "")
        if root is None or not name or ".." in Path(sub, name).parts:
            return web.Response(status=400)
        path = root / sub / name
        if not path.is_file():
            return web.Response(status=404)
        return web.Response(body=path.read_bytes(), content_type="image/png")

    async def post_upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form.get("image")
        if image is None or not hasattr(image, "file"):
            return web.Response(status=400)
        sub = str(form.get("subfolder", ""))
        folder = self.input / sub
        folder.mkdir(parents=True, exist_ok=True)
        name = Path(image.filename).name
        if str(form.get("overwrite", "false")).lower() != "true":
            stem, suffix, n = Path(name).stem, Path(name).suffix, 1
            while (folder / name).exists():
                name, n = f"{stem} ({n}){suffix}", n + 1
        (folder / name).write_bytes(image.file.read())
        return web.json_response({"name": name, "subfolder": sub, "type": "input"})

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client_id = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets.setdefault(client_id, []).append(ws)
        await ws.send_json(
            {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}}
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets[client_id].remove(ws)
        return ws

    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return _reject({"type": "invalid_prompt", "message": "Invalid prompt", "details": "no prompt"})
        error, node_errors = self.validate(prompt)
        if error:
            return _reject(error, node_errors)
        prompt_id = uuid.uuid4().hex
        number = len(self.prompts)
        self.prompts.append(prompt)
        self.running[prompt_id] = [number, prompt_id, prompt, {}, []]
        asyncio.get_running_loop().create_task(self.tracked(prompt_id, prompt, body.get("client_id")))
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    # -- validation (ComfyUI's execution.validate_prompt, reduced to the rules that matter here) --
    def validate(self, prompt: dict[str, Any]) -> tuple[dict | None, dict]:
        info = self.info()
        for node_id, node in prompt.items():
            cls = node.get("class_type") if isinstance(node, dict) else None
            if cls not in info:
                return {
                    "type": "missing_node_type",
                    "message": f"Node '{cls}' not found. The custom node may not be installed.",
                    "details": f"Node ID '#{node_id}'",
                }, {}
        outputs = [nid for nid, node in prompt.items() if info[node["class_type"]]["output_node"]]
        if not outputs:
            return {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": ""}, {}
        node_errors: dict[str, Any] = {}
        for node_id, node in prompt.items():
            errors = self._node_errors(prompt, info, node)
            if errors:
                node_errors[node_id] = {
                    "errors": errors,
                    "dependent_outputs": outputs,
                    "class_type": node["class_type"],
                }
        if node_errors:
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
            }
            return error, node_errors
        return None, {}

    def _node_errors(self, prompt: dict, info: dict, node: dict) -> list[dict[str, Any]]:
        spec = info[node["class_type"]]["input"]
        declared = {**spec.get("required", {}), **spec.get("optional", {})}
        inputs = node.get("inputs") or {}
        errors = []
        for name in spec.get("required", {}):
            if name not in inputs:
                errors.append(
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": name,
                        "extra_info": {"input_name": name},
                    }
                )
        for name, value in inputs.items():
            kind = declared.get(name, [None])[0]
            if isinstance(value, list):
                source = prompt.get(str(value[0]))
                outs = info[source["class_type"]]["output"] if source else []
                if (
                    source is None
                    or value[1] >= len(outs)
                    or (isinstance(kind, str) and outs[value[1]] != kind)
                ):
                    errors.append(
                        {
                            "type": "return_type_mismatch",
                            "message": "Return type mismatch between linked nodes",
                            "details": f"{name}, {value}",
                            "extra_info": {"input_name": name},
                        }
                    )
            elif isinstance(kind, list) and value not in kind:
                errors.append(
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": f"{name}: '{value}' not in {kind}",
                        "extra_info": {"input_name": name},
                    }
                )
        return errors

    # -- execution ------------------------------------------------------------------------------
    async def send(self, client_id: str | None, kind: str, data: dict[str, Any]) -> None:
        for ws in list(self.sockets.get(client_id or "", [])):
            await ws.send_str(json.dumps({"type": kind, "data": data}))

    async def tracked(self, prompt_id: str, prompt: dict, client_id: str | None) -> None:
        """`execute`, listed in `/queue` until it ends (a hung prompt never does)."""
        await self.execute(prompt_id, prompt, client_id)
        if not self.behaviour.hang:
            self.running.pop(prompt_id, None)

    async def execute(self, prompt_id: str, prompt: dict, client_id: str | None) -> None:
        await self.send(client_id, "execution_start", {"prompt_id": prompt_id})
        if self.behaviour.hang:
            await self.send(
                client_id, "executing", {"node": "1", "display_node": "1", "prompt_id": prompt_id}
            )
            return  # never finishes, like a stuck GPU
        outputs: dict[str, Any] = {}
        for node_id, node in prompt.items():
            await self.send(
                client_id, "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}
            )
            await asyncio.sleep(self.behaviour.step_delay)
            if node["class_type"] == self.behaviour.fail_class:
                await self.send(
                    client_id,
                    "execution_error",
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": node["class_type"],
                        "exception_message": "CUDA out of memory (simulated)",
                        "exception_type": "RuntimeError",
                        "traceback": [],
                        "executed": [],
                        "current_inputs": {},
                        "current_outputs": {},
                    },
                )
                self.history[prompt_id] = {
                    "prompt": [0, prompt_id, prompt, {}, []],
                    "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": []},
                }
                return
            if node["class_type"] == "KSampler":
                steps = int(node["inputs"]["steps"])
                for step in range(1, steps + 1):
                    await self.send(
                        client_id,
                        "progress",
                        {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id},
                    )
            if node["class_type"] == "SaveImage":
                images = [self.save_png(prompt, node)]
                outputs[node_id] = {"images": images}
                await self.send(
                    client_id,
                    "executed",
                    {
                        "node": node_id,
                        "display_node": node_id,
                        "output": {"images": images},
                        "prompt_id": prompt_id,
                    },
                )
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, prompt, {}, list(outputs)],
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": []},
        }
        await self.send(client_id, "execution_success", {"prompt_id": prompt_id})
        await self.send(client_id, "executing", {"node": None, "prompt_id": prompt_id})

    def save_png(self, prompt: dict, save: dict) -> dict[str, str]:
        width, height, seed, loras = 64, 64, 0, []
        for node in prompt.values():
            inputs = node["inputs"]
            if node["class_type"] in ("EmptyLatentImage", "EmptySD3LatentImage"):
                width, height = inputs["width"], inputs["height"]
            elif node["class_type"] == "KSampler":
                seed = inputs["seed"]
            elif node["class_type"].startswith("LoraLoader"):
                loras.append((inputs["lora_name"], inputs["strength_model"]))
        active = sorted((name, round(s, 4)) for name, s in loras if s != 0)
        digest = hashlib.sha256(json.dumps([seed, active]).encode()).digest()
        image = Image.new("RGB", (min(width, 256), min(height, 256)), tuple(digest[:3]))
        prefix = Path(save["inputs"]["filename_prefix"])
        folder = self.output / prefix.parent
        folder.mkdir(parents=True, exist_ok=True)
        self.counter += 1
        name = f"{prefix.name}_{self.counter:05d}_.png"
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        (folder / name).write_bytes(buffer.getvalue())
        sub = "" if str(prefix.parent) == "." else str(prefix.parent)
        return {"filename": name, "subfolder": sub, "type": "output"}


def _reject(error: dict[str, Any], node_errors: dict | None = None) -> web.Response:
    return web.json_response({"error": error, "node_errors": node_errors or {}}, status=400)


def main(argv: list[str] | None = None) -> int:
    """Serve on ComfyUI's own command line (the part `lorapilot-appliance comfyui` passes), so a test
    can stand this server in for a ComfyUI checkout's main.py under supervisord."""
    import argparse  # noqa: PLC0415
    import signal  # noqa: PLC0415

    import yaml  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="fake ComfyUI")
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--extra-model-paths-config", type=Path, required=True)
    parser.add_argument("--output-directory", type=Path, required=True)
    parser.add_argument("--input-directory", type=Path, required=True)
    parser.add_argument("--user-directory", type=Path)
    parser.add_argument("--disable-auto-launch", action="store_true")
    args = parser.parse_args(argv)
    paths = yaml.safe_load(args.extra_model_paths_config.read_text(encoding="utf-8"))
    models = Path(next(iter(paths.values()))["base_path"])
    server = FakeComfyUI(
        models, args.output_directory, args.input_directory, host=args.listen, port=args.port
    )
    server.start()
    print(f"fake ComfyUI at {server.url}, models from {models}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

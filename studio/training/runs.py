"""What both stages share about a run: device and process set-up, logging, the stop rule, the progress a
checkpoint records (for an exact resume), the run history and summary, and the model folder it writes."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

from studio.atomic import write_atomically
from studio.engine.devices import choose_device, set_threads
from studio.engine.requests import RequestError
from studio.models.cgan import BaseGenerator, Upsampler, premultiplied_to_rgba_uint8
from studio.models.tensor_file import save_tensors
from studio.training.dataset import load_dataset
from studio.training.options import CHECKPOINT, TrainError, TrainOptions


def read_weights(path) -> dict:
    """A safetensors file's tensors, or one sentence saying why not."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise TrainError(f"Cannot read weights '{path}' ({exc}).") from exc


def write_weights(state: dict, path) -> None:
    """Save tensors as safetensors (moved to the CPU and made contiguous first): the twin of ``read_weights``."""
    save_tensors(path, state)


def same_shapes(state: dict, reference: dict) -> bool:
    """Whether ``state`` has exactly ``reference``'s keys, each tensor of the same shape."""
    return state.keys() == reference.keys() and all(state[k].shape == v.shape for k, v in reference.items())


NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 AVX-512 BF16 / AMX; "bf16" on aarch64


def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """Whether bf16 autocast pays on this CPU: only where it has native bf16 instructions. oneDNN also runs
    bf16 on AVX-512 CPUs without them, by emulation, and says it is supported: measured 1.65x slower than
    float32 in base-stage training on such an Intel Xeon, and 30x slower on AVX2-only CPUs.
    ``cpuinfo``: the text of /proc/cpuinfo (read here when None; without it oneDNN's answer decides)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if flags:
        return bool(flags & NATIVE_BF16_FLAGS)
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_if_native(requested: bool) -> bool:
    """``requested``, where this CPU runs bf16 natively (:func:`cpu_supports_bf16`); elsewhere False, with one
    sentence on stderr: an explicit ``--bf16`` on such a CPU would run emulated, up to 30x slower than float32."""
    if requested and not cpu_supports_bf16():
        print(
            "This CPU has no native bf16 instructions (bf16 autocast runs emulated there, up to 30x slower): "
            "running in float32.",
            file=sys.stderr,
        )
        return False
    return requested


def set_training_threads(threads: int | None) -> None:
    """``--threads`` of the training tools, by the engine's rule (at least 1; None: torch's choice)."""
    try:
        set_threads(threads)
    except RequestError as exc:
        raise TrainError(str(exc)) from exc


def pick_device(name: str | None) -> torch.device:
    """The training device by the engine's rule (CUDA, then MPS, then CPU; ``$GAN_STUDIO_DEVICE``); under
    torchrun, a CUDA device without an index means one GPU per process (``LOCAL_RANK``)."""
    try:
        device = choose_device(name).device
    except RequestError as exc:  # the engine's device sentence
        raise TrainError(str(exc)) from exc
    if (
        device.type == "cuda"
        and (name is None or ":" not in name)
        and int(os.environ.get("WORLD_SIZE", "1")) > 1
    ):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class Dist:
    """Rank/world of a torchrun launch (a single process otherwise)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                dist.init_process_group(backend=backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, module: nn.Module) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_module(self, module: nn.Module) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (so all stop at the same step)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, obj) -> list:
        """Every process's ``obj`` in rank order (a collective: every process must call it)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        gathered: list = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()


def setup_run(options: TrainOptions):
    set_training_threads(options.threads)
    device = pick_device(options.device)
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist = Dist(device)
    data = load_dataset(options.data)
    run = options.run or Path("runs") / options.stage
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
        options.out.mkdir(parents=True, exist_ok=True)
    use_bf16 = options.bf16 if options.bf16 is not None else (device.type == "cpu" and cpu_supports_bf16())
    if device.type == "cuda":
        use_bf16 = torch.cuda.is_bf16_supported() if options.bf16 is None else options.bf16
    return device, dist, data, run, use_bf16


def log_line(options: TrainOptions, dist: Dist, text: str) -> None:
    if dist.main and not options.quiet:
        print(text, flush=True)


def should_stop(options: TrainOptions, step: int, started: float) -> bool:
    if options.steps is not None and step >= options.steps:
        return True
    if options.minutes is not None and time.time() - started >= options.minutes * 60.0:
        return True
    return False


def open_checkpoint(options: TrainOptions, run: Path) -> tuple[Path, dict | None]:
    """The run's checkpoint path, and its state when resuming from one (else None)."""
    path = run / CHECKPOINT
    if options.resume and path.exists():
        # on the CPU: the RNG states must stay there, and load_state_dict moves weights and optimizer state
        # to wherever the modules are
        return path, torch.load(path, map_location="cpu", weights_only=False)
    return path, None


def rank_seeds(options: TrainOptions, dist: Dist) -> tuple[int, int]:
    """This process's seeds for its data sampler and its torch generator (different on every rank)."""
    return options.seed * 1000 + dist.rank, options.seed * 1000 + dist.rank + 1


def on_cpu(value):
    """``value`` with every tensor in it (nested dicts, lists, tuples) moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


def save_checkpoint(state: dict, path: Path) -> None:
    """``torch.save`` all at once: a crash mid-save keeps the previous checkpoint. Every tensor is saved from the
    CPU, so a run trained on a GPU resumes, or is read, on a machine without one."""
    state = on_cpu(state)
    write_atomically(path, lambda temp: torch.save(state, temp))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"


class RunHistory:
    """Every run that made a checkpoint, oldest first; a resumed run appends itself, so a model's card can list
    each run's steps, minutes and speed (kept in the checkpoint and in the run summary)."""

    def __init__(self, state: dict | None, settings: dict):
        state = state or {}
        previous = state.get("runs")
        if previous is None and state.get("step"):  # written before runs were recorded
            previous = [
                {"from_step": 0, "to_step": state["step"], "minutes": round(state["seconds"] / 60, 2)}
            ]
        self.previous = list(previous or [])
        self.start_step = int(state.get("step", 0))
        self.start_images = int(state.get("images", 0))
        self.started = time.time()
        self.settings = settings

    def runs(self, step: int, images: int) -> list[dict]:
        seconds = time.time() - self.started
        current = {
            "from_step": self.start_step,
            "to_step": step,
            "minutes": round(seconds / 60, 2),
            "img_per_s": round((images - self.start_images) / max(seconds, 1e-6), 1),
            "threads": torch.get_num_threads(),
            "machine": machine(),
            **self.settings,
        }
        return [*self.previous, current]


def progress_fields(step: int, seconds: float, images: int, rng: list, history: RunHistory) -> dict:
    """What both stages' checkpoints record about progress, for an exact resume and the run history."""
    return {
        "step": step,
        "seconds": seconds,
        "images": images,
        "rng": rng,
        "runs": history.runs(step, images),
    }


def restore_progress(state: dict, dist: Dist) -> tuple[int, float, int, dict | None]:
    """Step, trained seconds and images of a checkpoint, and this process's RNG state (None for a rank the
    checkpoint did not have, e.g. after adding processes)."""
    ranks = state["rng"]
    mine = ranks[dist.rank] if dist.rank < len(ranks) else None
    return state["step"], state["seconds"], state["images"], mine


def run_summary(stage, step, images_seen, seconds, batch, dist, use_bf16, ch, device) -> dict:
    """What a finished run reports (and the model card quotes): progress, speed and the setup it ran on."""
    return {
        "stage": stage,
        "step": step,
        "images": images_seen,
        "minutes": round(seconds / 60, 2),
        "img_per_s": round(images_seen / max(seconds, 1e-6), 1),
        "batch": batch,
        "processes": dist.world,
        "bf16": use_bf16,
        "ch": ch,
        "device": str(device),
        "machine": machine(),
    }


def save_grid(images: torch.Tensor, rows: int, path: Path) -> None:
    """Premultiplied RGBA batch -> a PNG grid (rows x cols) on a light checkerboard-free grey."""
    from PIL import Image

    rgba = premultiplied_to_rgba_uint8(images).numpy()
    n, h, w, _ = rgba.shape
    cols = math.ceil(n / rows)
    sheet = Image.new("RGBA", (cols * w, rows * h), (235, 235, 235, 255))
    for i in range(n):
        tile = Image.fromarray(rgba[i], "RGBA")
        sheet.alpha_composite(tile, ((i % cols) * w, (i // cols) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.convert("RGB").save(path)


def read_manifest(folder: Path) -> dict:
    path = folder / "model.json"
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return {}
    return {}


def conditioning(data) -> dict:
    """model.json's ``conditioning`` block for a model trained on ``data`` (its captions' encoder)."""
    return {
        "kind": "text",
        "encoder": data.manifest.get("encoder", "all-MiniLM-L6-v2"),
        "embedding_dim": int(data.caption_emb.shape[1]),
    }


def default_manifest(data=None) -> dict:
    return {
        "name": "emoji",
        "version": "0.1.0",
        "description": "Text-conditional emoji GAN: a 32 px base generator and a learned 4x RGBA upsampler.",
        "conditioning": conditioning(data)
        if data is not None
        else {"kind": "text", "encoder": "all-MiniLM-L6-v2", "embedding_dim": 384},
        "default_truncation": 0.8,
        "license": "SIL Open Font License 1.1 (Noto Color Emoji); model weights Apache-2.0",
        "training_data": "Every fully-qualified emoji of Unicode emoji-test.txt rendered with Noto Color Emoji "
        "(Debian fonts-noto-color-emoji), captions from emoji-test names and CLDR annotations.",
        "metrics": {},
    }


def write_model_folder(
    out: Path,
    generator: BaseGenerator | None,
    upsampler: Upsampler | None,
    training_update: dict | None = None,
    data=None,
) -> None:
    """Write/refresh the model folder, keeping whichever stage is not given from what is there; ``data``
    (the training set) sets the conditioning block."""
    from studio.models.format import ModelError, load_model, save_model

    manifest = read_manifest(out) or default_manifest(data)
    if data is not None:
        manifest["conditioning"] = conditioning(data)
    existing = None
    if (generator is None or upsampler is None) and (out / "model.json").exists():
        try:
            existing = load_model(out)
        except ModelError:
            existing = None
    if generator is None:
        if existing is None:
            raise TrainError(f"'{out}' has no base generator yet; train the base stage first.")
        generator = existing.generator
    if upsampler is None and existing is not None:
        upsampler = existing.upsampler
    for key in ("format", "architecture", "resolution", "channels", "z_dim", "files"):
        manifest.pop(key, None)
    if training_update:
        training = dict(manifest.get("training", {}))
        training.update(training_update)
        manifest["training"] = training
    save_model(out, manifest, generator.eval(), upsampler.eval() if upsampler is not None else None)

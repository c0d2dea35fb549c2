"""Pretrained checkpoints from the Hugging Face Hub, with the exact revision recorded.

The weights file is resolved through huggingface_hub (so HF_HOME, HF_HUB_CACHE, HF_TOKEN,
HF_HUB_OFFLINE and HF_ENDPOINT apply, read at call time), then handed to timm's own
`create_model(pretrained=True)` as a local file, so timm's key filtering and head adaptation
run exactly as they do for timm's users. safetensors are preferred; `.bin` files load with
weights_only; no remote code ever runs.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.errors import MatchupError

PREFERRED_FILES = ("model.safetensors", "pytorch_model.bin")


class HubError(MatchupError):
    """A checkpoint cannot be fetched or loaded; the message says what to do."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub, read now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


@lru_cache(maxsize=1)
def _pretrained_names() -> frozenset[str]:
    import timm
    return frozenset(timm.list_pretrained())  # sorting 1,800 names costs ~10 ms: do it once


def pretrained_cfg(checkpoint: str):
    """timm's pretrained config for `arch.tag`; unknown ids get close suggestions."""
    import timm
    import timm.models
    if checkpoint not in _pretrained_names():
        known = sorted(_pretrained_names())
        close = difflib.get_close_matches(checkpoint, known, n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise HubError(f"{checkpoint!r} is not a pretrained checkpoint of timm {timm.__version__} "
                       f"(ids are `arch.tag`, e.g. resnet50.a1_in1k).{hint} "
                       "`python -m engine catalog list` shows them all.")
    return timm.models.get_pretrained_cfg(checkpoint)


def data_config(cfg) -> dict:
    """The checkpoint's own eval preprocessing, as validate.py resolves it (test size)."""
    from timm.data import resolve_data_config
    return resolve_data_config(pretrained_cfg=cfg.to_dict(), use_test_size=True)


@dataclass(frozen=True)
class HubWeights:
    checkpoint: str
    repo_id: str
    revision: str   # the commit SHA the file came from
    filename: str
    path: Path


def _candidates(cfg) -> list[str]:
    if cfg.hf_hub_filename:
        name = cfg.hf_hub_filename
        stem = name.rsplit(".", 1)[0]
        return [f"{stem}.safetensors", name] if not name.endswith(".safetensors") else [name]
    return list(PREFERRED_FILES)


def check_on_hub(checkpoint: str, cfg) -> None:
    """Refuse a checkpoint whose weights timm does not take from the Hugging Face Hub."""
    if not cfg.hf_hub_id:
        raise HubError(f"{checkpoint} has no Hugging Face Hub repo in timm's config (its weights "
                       f"come from {cfg.url or 'elsewhere'}); Matchup loads Hub checkpoints only.")


def resolve(checkpoint: str) -> HubWeights:
    """The weights file of a checkpoint in the local Hub cache (downloading it when online)."""
    cfg = pretrained_cfg(checkpoint)
    check_on_hub(checkpoint, cfg)
    return resolve_file(checkpoint, cfg.hf_hub_id, _candidates(cfg))


def resolve_file(checkpoint: str, repo_id: str, candidates: list[str], loader: str = "timm") -> HubWeights:
    """The first of `candidates` that `repo_id` has, from the local Hub cache (downloaded when
    online); timm and OpenCLIP checkpoints alike, with one set of messages."""
    from huggingface_hub import errors, hf_hub_download
    offline = _env_flag("HF_HUB_OFFLINE")
    missing = []
    for filename in candidates:
        try:
            path = hf_hub_download(repo_id, filename, cache_dir=cache_dir(),
                                   local_files_only=offline, token=os.environ.get("HF_TOKEN"),
                                   endpoint=os.environ.get("HF_ENDPOINT"))
        except errors.GatedRepoError:
            raise HubError(
                f"{repo_id} is gated or private on the Hugging Face Hub. Open "
                f"https://huggingface.co/{repo_id}, accept its licence (or ask for access), then "
                "set HF_TOKEN to a token of that account and try again.") from None
        except errors.RepositoryNotFoundError:
            raise HubError(
                f"The Hub has no repo {repo_id} (for checkpoint {checkpoint}), or it is private "
                "and HF_TOKEN is not set for an account that can read it.") from None
        except (errors.EntryNotFoundError, errors.LocalEntryNotFoundError) as e:
            missing.append(filename)
            last_error = e
            continue
        except ValueError as e:  # huggingface_hub refuses a ref that leads outside the cache
            raise HubError(
                f"The local Hub cache entry of {repo_id} in {cache_dir()} is damaged: its refs point "
                f"outside the cache ({str(e).split(':')[0]}). Delete "
                f"{cache_dir() / ('models--' + repo_id.replace('/', '--'))} and fetch the checkpoint again "
                f"(`hf download {repo_id}` online).") from None
        revision = Path(path).parent.name
        return HubWeights(checkpoint, repo_id, revision, filename, Path(path))
    if offline or isinstance(last_error, errors.LocalEntryNotFoundError):
        raise HubError(_not_cached(checkpoint, repo_id, missing, offline))
    raise HubError(f"{repo_id} has none of {', '.join(missing)}; {loader} cannot load it.")


def _not_cached(checkpoint: str, repo_id: str, missing: list[str], offline: bool) -> str:
    return (f"{checkpoint} is not in the local Hub cache ({cache_dir()}) and the Hub cannot be "
            f"reached{' (HF_HUB_OFFLINE is set)' if offline else ''}: missing "
            f"{' or '.join(missing)} of {repo_id}. On a machine with internet run "
            f"`hf download {repo_id} {missing[0]}` with the same HF_HUB_CACHE, or unset "
            "HF_HUB_OFFLINE.")


OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def require_cached(store, checkpoints) -> None:
    """Offline (HF_HUB_OFFLINE), refuse at once a checkpoint whose Hub repo has never reached the
    local cache. The catalog knows each checkpoint's repo, so no model code (torch, timm,
    open_clip: seconds to import) loads just to say the weights are not there; a checkpoint the
    catalog does not know is left to the full check."""
    if not _env_flag("HF_HUB_OFFLINE"):
        return
    repos = store.hub_repos(list(checkpoints))
    for checkpoint in checkpoints:
        repo = repos.get(checkpoint)
        if not repo:
            continue
        snapshots = cache_dir() / ("models--" + repo.replace("/", "--")) / "snapshots"
        if snapshots.is_dir() and any(p.is_file() for p in snapshots.rglob("*")):
            continue
        files = OPEN_CLIP_FILES if checkpoint.startswith("open_clip:") else PREFERRED_FILES
        raise HubError(_not_cached(checkpoint, repo, list(files), offline=True))


def load_model(checkpoint: str):
    """(model in eval mode, HubWeights): timm builds it with pretrained=True from the resolved file."""
    import timm
    weights = resolve(checkpoint)
    _check_weights_file(weights.path)
    try:
        model = timm.create_model(checkpoint, pretrained=True,
                                  pretrained_cfg_overlay={"file": str(weights.path), "source": ""})
    except Exception as e:  # noqa: BLE001 - any failure here means this file is unusable
        raise HubError(
            f"The weights file {weights.path} ({weights.repo_id} at {weights.revision[:12]}) "
            f"could not be loaded into {checkpoint}: {type(e).__name__}: {_load_failure(e)}. It was not "
            "used. If it is corrupt, delete that snapshot folder and fetch it again.") from None
    return model.eval(), weights


def _load_failure(error: Exception) -> str:
    """The useful part of a state-dict failure: which tensors, which shapes (torch puts them on the
    lines after a generic first line)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith(("size mismatch for", "Missing key", "Unexpected key"))]
    shown = detail[:3] or lines[:1]
    more = f" (and {len(detail) - 3} more)" if len(detail) > 3 else ""
    return "; ".join(line[:300] for line in shown) + more


def _check_weights_file(path: Path) -> None:
    """Refuse a corrupt safetensors file before timm reads it, naming the file."""
    if path.suffix != ".safetensors":
        return
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad headers
        raise HubError(
            f"The cached weights file {path} is corrupt ({type(e).__name__}: {e}); it was not "
            f"used. Delete {path.parent} and fetch the checkpoint again.") from None

"""Results measured here (evaluations, benchmarks) and the reads that join them to the catalog."""
from __future__ import annotations

import json

import pandas as pd

from engine.store.connection import _now


class MeasuredResults:
    BENCHMARK_COLUMNS = ("cache_key", "checkpoint", "arch", "img_size", "batch_size", "precision",
                         "channels_last", "compiled", "device_name", "throughput",
                         "latency_p50_ms", "latency_p90_ms", "peak_memory_mb", "error",
                         "torch_version", "timm_version", "cuda_version", "details", "created_at")

    def _cached(self, table: str, key: str) -> dict | None:
        """One stored result by cache key, details parsed."""
        with self.connect() as con:
            cursor = con.execute(f"SELECT * FROM {table} WHERE cache_key = ?", [key])
            rows = cursor.fetchall()
            if not rows:
                return None
            row = dict(zip([d[0] for d in cursor.description], rows[0]))
        row["details"] = json.loads(row["details"]) if row["details"] else {}
        return row

    def _put_result(self, table: str, columns: tuple[str, ...], row: dict, job: tuple[str, str] | None) -> None:
        """A finished result and, for a queued job, its `done` state, in one transaction."""
        values = {**row, "details": json.dumps(row.get("details") or {}, default=str),
                  "created_at": row.get("created_at") or _now()}
        present = [c for c in columns if c in values]
        with self._queue_lock(), self.transaction() as con:
            con.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(present)}) VALUES "
                        f"({', '.join('?' for _ in present)})", [values[c] for c in present])
            if job is not None:
                con.execute("""UPDATE jobs SET state = 'done', progress = 1.0, finished_at = ?,
                                   result_key = ?, error = NULL
                               WHERE id = ? AND worker = ? AND state = 'running'""",
                            [_now(), row["cache_key"], *job])

    def benchmark(self, key: str) -> dict | None:
        return self._cached("benchmarks", key)

    def put_benchmark(self, row: dict, job: tuple[str, str] | None = None) -> None:
        self._put_result("benchmarks", self.BENCHMARK_COLUMNS, row, job)

    EVAL_COLUMNS = ("cache_key", "checkpoint", "hub_revision", "dataset_id", "dataset_fingerprint",
                    "label_map", "img_size", "crop_pct", "crop_mode", "interpolation", "precision",
                    "device_name", "n_images", "top1", "top5", "nll", "ece", "seconds",
                    "images_per_sec", "torch_version", "timm_version", "cuda_version", "details",
                    "created_at")

    def eval_result(self, key: str) -> dict | None:
        return self._cached("evals", key)

    def put_eval(self, row: dict, job: tuple[str, str] | None = None) -> None:
        self._put_result("evals", self.EVAL_COLUMNS, row, job)

    ZEROSHOT_COLUMNS = ("cache_key", "checkpoint", "hub_revision", "dataset_id", "dataset_name", "dataset_root",
                        "dataset_fingerprint", "classnames", "templates_name", "templates", "img_size", "crop_mode",
                        "interpolation", "precision", "device_name", "n_images", "n_classes", "top1", "top5",
                        "balanced_accuracy", "seconds", "images_per_sec", "skipped_images", "torch_version",
                        "open_clip_version", "cuda_version", "details", "created_at")

    def zeroshot_result(self, key: str) -> dict | None:
        row = self._cached("zeroshots", key)
        if row is not None:
            row["classnames"], row["templates"] = json.loads(row["classnames"]), json.loads(row["templates"])
        return row

    def put_zeroshot(self, row: dict, job: tuple[str, str] | None = None) -> None:
        """A zero-shot result; class names and templates as JSON lists (part of what was measured)."""
        self._put_result("zeroshots", self.ZEROSHOT_COLUMNS,
                         {**row, "classnames": json.dumps(list(row["classnames"])),
                          "templates": json.dumps(list(row["templates"]))}, job)

    PROBE_COLUMNS = ("cache_key", "checkpoint", "hub_revision", "dataset_name", "dataset_root",
                     "dataset_fingerprint", "val_fingerprint", "n_images", "n_classes", "classes", "protocol",
                     "folds", "shots", "seed", "feature_dim", "feature_source", "img_size",
                     *(f"{m}{s}" for m in ("accuracy", "balanced_accuracy", "macro_f1", "nll")
                       for s in ("", "_low", "_high")),
                     "extract_seconds", "skipped_images", "torch_version", "timm_version", "sklearn_version",
                     "details", "created_at")

    def probe_result(self, key: str) -> dict | None:
        return self._cached("probes", key)

    def put_probe(self, row: dict, job: tuple[str, str] | None = None) -> None:
        self._put_result("probes", self.PROBE_COLUMNS, row, job)

    def probe_summaries(self) -> pd.DataFrame:
        """Per probe dataset and protocol: what the pages say under a probe metric."""
        with self.connect() as con:
            return con.execute("""SELECT dataset_name, dataset_fingerprint, protocol, folds, shots,
                                         max(n_images) AS n_images, max(n_classes) AS n_classes,
                                         count(DISTINCT checkpoint) AS n_checkpoints
                                  FROM probes GROUP BY dataset_name, dataset_fingerprint, protocol, folds, shots""").df()

    def analysis_inputs(self) -> dict[str, pd.DataFrame]:
        """Everything engine.analysis assembles points from, one frame per source."""
        facts = ("c.arch, c.arch_class, c.family, c.pretrain_data, c.data_scale, c.num_classes, "
                 "coalesce(c.zoo, 'imagenet') AS zoo")
        queries = {
            "published": f"""SELECT r.checkpoint, {facts}, r.img_size, r.dataset, r.top1, r.top5
                             FROM published_results r JOIN checkpoints c USING (checkpoint)""",
            "evals": f"""SELECT e.checkpoint, {facts}, e.img_size,
                                json_extract_string(e.details, '$.variant') AS variant, e.dataset_fingerprint,
                                e.top1, e.top5, e.ece, e.nll
                         FROM evals e JOIN checkpoints c USING (checkpoint)""",
            "compute": "SELECT arch, img_size, num_classes, flops, params, error FROM compute",
            "published_benchmarks": """SELECT source_file, arch, img_size, samples_per_sec
                                       FROM published_benchmarks WHERE mode = 'infer'""",
            "benchmarks": "SELECT arch, img_size, latency_p50_ms, throughput, error FROM benchmarks",
            "reference": "SELECT * FROM reference_points",
            "training_compute": """SELECT checkpoint, train_flops, train_flops_low, train_flops_high, placement,
                                          confidence, bracket_low, bracket_high FROM training_compute
                                   WHERE train_flops IS NOT NULL OR bracket_low IS NOT NULL""",
            "image_text_published": f"""SELECT p.checkpoint, {facts}, c.input_h AS img_size, p.metric, p.value
                                         FROM published_image_text p JOIN checkpoints c USING (checkpoint)
                                         WHERE p.value IS NOT NULL""",
            "zeroshots": f"""SELECT z.checkpoint, {facts}, z.img_size, z.dataset_id, z.dataset_fingerprint, z.n_classes,
                                    json_extract_string(z.details, '$.label_map') AS label_map,
                                    z.created_at, z.top1, z.top5, z.balanced_accuracy
                             FROM zeroshots z JOIN checkpoints c USING (checkpoint)""",
            "probes": f"""SELECT p.checkpoint, {facts}, p.img_size, p.dataset_name, p.dataset_fingerprint, p.protocol, p.folds,
                                 p.shots, p.n_images, p.created_at, p.accuracy, p.balanced_accuracy, p.macro_f1, p.nll
                          FROM probes p JOIN checkpoints c USING (checkpoint)""",
            "objectives": """SELECT c.checkpoint, c.arch, c.tag, coalesce(c.zoo, 'imagenet') AS zoo, t.stages
                             FROM checkpoints c LEFT JOIN training_compute t USING (checkpoint)""",
        }
        with self.connect() as con:
            return {name: con.execute(sql).df() for name, sql in queries.items()}

    def checkpoint_detail(self, checkpoint: str) -> dict[str, pd.DataFrame]:
        """Everything stored about one checkpoint, for its page."""
        queries = {
            "facts": "SELECT * FROM checkpoints WHERE checkpoint = ?",
            "compute": """SELECT c.* FROM compute c JOIN checkpoints k ON k.arch = c.arch
                          WHERE k.checkpoint = ? ORDER BY c.img_size, c.num_classes""",
            "published": """SELECT dataset, img_size, top1, top5, param_count, crop_pct, interpolation,
                                   source_file FROM published_results WHERE checkpoint = ?
                            ORDER BY dataset, img_size""",
            "published_gmacs": """SELECT b.img_size, b.source_file, b.gmacs, b.samples_per_sec, b.device,
                                         b.precision, b.compiled
                                  FROM published_benchmarks b JOIN checkpoints k ON k.arch = b.arch
                                  WHERE k.checkpoint = ? AND b.mode = 'infer' ORDER BY b.source_file""",
            "evals": "SELECT * EXCLUDE (details) FROM evals WHERE checkpoint = ? ORDER BY created_at DESC",
            "probes": """SELECT dataset_name, protocol, folds, shots, n_images, n_classes, accuracy, accuracy_low,
                                accuracy_high, balanced_accuracy, macro_f1, nll, feature_dim, feature_source,
                                created_at FROM probes WHERE checkpoint = ? ORDER BY created_at DESC""",
            "benchmarks": """SELECT b.* EXCLUDE (details) FROM benchmarks b JOIN checkpoints k ON k.arch = b.arch
                             WHERE k.checkpoint = ? ORDER BY b.created_at DESC""",
            "training": "SELECT * FROM training_compute WHERE checkpoint = ?",
            "image_text": "SELECT * FROM image_text WHERE checkpoint = ?",
            "published_image_text": """SELECT metric, value, source_file FROM published_image_text
                                       WHERE checkpoint = ? ORDER BY metric""",
            "zeroshots": """SELECT dataset_name, n_classes, templates_name, n_images, top1, top5, balanced_accuracy,
                                   precision, device_name, images_per_sec, created_at
                            FROM zeroshots WHERE checkpoint = ? ORDER BY created_at DESC""",
        }
        with self.connect() as con:
            return {name: con.execute(sql, [checkpoint]).df() for name, sql in queries.items()}

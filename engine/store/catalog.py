"""The catalog, counted compute and published tables: what exists and what was published."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from engine.store import schema
from engine.store.connection import _now, sql_string


IMAGE_TEXT_COMPUTE_COLUMNS = ("model", "image_size", "text_length", "image_params", "text_params", "image_flops",
                              "text_flops", "train_forward_flops", "counter", "error", "torch_version",
                              "open_clip_version", "created_at")


class CatalogTables:
    def replace_catalog(self, architectures: pd.DataFrame, checkpoints: pd.DataFrame,
                        reference_points: pd.DataFrame, timm_version: str,
                        image_text: pd.DataFrame | None = None) -> None:
        """The whole catalog in one transaction: readers see the old one or the new one.
        `image_text`: the image-text zoo's details (its checkpoints are in `checkpoints`)."""
        with self.transaction() as con:
            for table in ("architectures", "checkpoints", "reference_points", "image_text"):
                con.execute(f"DELETE FROM {table}")
            self._insert(con, "architectures", architectures)
            self._insert(con, "checkpoints", checkpoints)
            self._insert(con, "reference_points", reference_points)
            if image_text is not None and not image_text.empty:
                self._insert(con, "image_text", image_text)
            self._set_meta(con, catalog_refreshed_at=_now().isoformat(timespec="seconds"),
                           catalog_timm_version=timm_version)
            con.execute("DELETE FROM meta WHERE key = 'catalog_complete'")  # until every step is done

    def mark_catalog_complete(self, timm_version: str) -> None:
        """Every refresh step done (catalog, FLOP counts, training compute): a refresh killed
        between its steps leaves this unset, and the next start finishes the job."""
        with self.transaction() as con:
            self._set_meta(con, catalog_complete=timm_version)

    def catalog_complete(self) -> bool:
        with self.connect() as con:
            rows = con.execute("SELECT value FROM meta WHERE key = 'catalog_complete'").fetchall()
            version = con.execute("SELECT value FROM meta WHERE key = 'catalog_timm_version'").fetchall()
        return bool(rows) and bool(version) and rows[0][0] == version[0][0]

    def replace_published_file(self, source_file: str, kind: str, rows: pd.DataFrame,
                               sha256: str, origin: str = "import", commit: str | None = None) -> None:
        """One published CSV's rows replace that file's previous rows, in one transaction;
        `origin` (sync or import) and the commit, when known, say where they came from."""
        table = {"results": "published_results", "benchmark": "published_benchmarks"}[kind]
        now = _now()
        with self.transaction() as con:
            for other in ("published_results", "published_benchmarks"):
                con.execute(f"DELETE FROM {other} WHERE source_file = ?", [source_file])
            self._insert(con, table, rows)
            con.execute("INSERT OR REPLACE INTO published_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [source_file, kind, len(rows), sha256, now, origin, commit, now])

    def published_origins(self) -> set[str]:
        """Where the stored published files came from (files from before origins were recorded
        count as imported)."""
        with self.connect() as con:
            return {row[0] for row in con.execute(
                "SELECT DISTINCT coalesce(origin, 'import') FROM published_files").fetchall()}

    def replace_published_snapshot(self, frames: dict[str, pd.DataFrame], files: list[tuple],
                                   commit: str | None, taken_at: str, snapshot: str) -> int | None:
        """The shipped snapshot's rows replace an earlier snapshot's, all in one transaction.
        Nothing changes (None) when published rows from sync or import are present: a snapshot
        never overwrites them. `files`: (source_file, kind, rows, sha256) per published file."""
        now = _now()
        taken = datetime.fromisoformat(taken_at).astimezone(timezone.utc).replace(tzinfo=None)
        with self.transaction() as con:
            foreign = con.execute("SELECT count(*) FROM published_files "
                                  "WHERE coalesce(origin, 'import') <> 'snapshot'").fetchall()[0][0]
            if foreign:
                return None
            for table in ("published_results", "published_benchmarks", "published_files"):
                con.execute(f"DELETE FROM {table}")
            loaded = 0
            for table, frame in frames.items():
                known = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
                self._insert(con, table, frame[[c for c in frame.columns if c in known]])
                loaded += len(frame)
            con.executemany("INSERT INTO published_files VALUES (?, ?, ?, ?, ?, 'snapshot', ?, ?)",
                            [[name, kind, rows, sha256, now, commit, taken]
                             for name, kind, rows, sha256 in files])
            self._set_meta(con, published_snapshot=snapshot)
            return loaded

    def export_published(self, paths: dict[str, str | os.PathLike]) -> None:
        """Published tables as zstd Parquet (table -> path), in a stable row order, for the
        shipped snapshot."""
        with self.connect() as con:
            for table, path in paths.items():
                con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO {sql_string(Path(path).as_posix())} "
                            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 19)")

    def published_provenance(self) -> list[dict]:
        """Where the published rows came from: one entry per (origin, commit), with the latest time its
        files were taken. (Grouped by the second each file landed, one import that spanned a clock
        second read as two.)"""
        with self.connect() as con:
            cursor = con.execute("""
                SELECT coalesce(origin, 'import') AS origin, commit,
                       strftime(max(coalesce(taken_at, imported_at)), '%Y-%m-%dT%H:%M:%S') AS taken_at,
                       count(*) AS files, CAST(sum(n_rows) AS BIGINT) AS rows
                FROM published_files GROUP BY coalesce(origin, 'import'), commit ORDER BY 3 DESC, 1""")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    # -- the image-text zoo's published tables and tower counts ----------------------------------
    def replace_image_text_file(self, source_file: str, kind: str, table: str, rows: pd.DataFrame, sha256: str,
                                origin: str = "import", commit: str | None = None) -> None:
        """One OpenCLIP file's rows replace its previous rows, in one transaction."""
        if table not in ("published_image_text", "published_image_text_profile"):
            raise ValueError(table)
        now = _now()
        with self.transaction() as con:
            for other in ("published_image_text", "published_image_text_profile"):
                con.execute(f"DELETE FROM {other} WHERE source_file = ?", [source_file])
            self._insert(con, table, rows)
            con.execute("INSERT OR REPLACE INTO published_image_text_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [source_file, kind, len(rows), sha256, now, origin, commit, now])

    def image_text_origins(self) -> set[str]:
        with self.connect() as con:
            return {r[0] for r in con.execute("SELECT DISTINCT origin FROM published_image_text_files").fetchall()}

    def replace_image_text_snapshot(self, frames: dict[str, pd.DataFrame], files: list[tuple], commit: str | None,
                                    taken_at: str, snapshot: str) -> int | None:
        """The shipped OpenCLIP snapshot replaces an earlier one in one transaction; nothing
        changes (None) when rows from sync or import are present."""
        now = _now()
        taken = datetime.fromisoformat(taken_at).astimezone(timezone.utc).replace(tzinfo=None)
        with self.transaction() as con:
            if con.execute("SELECT count(*) FROM published_image_text_files "
                           "WHERE origin <> 'snapshot'").fetchall()[0][0]:
                return None
            for table in ("published_image_text", "published_image_text_profile", "published_image_text_files"):
                con.execute(f"DELETE FROM {table}")
            for table, frame in frames.items():
                self._insert(con, table, frame)
            con.executemany("INSERT INTO published_image_text_files VALUES (?, ?, ?, ?, ?, 'snapshot', ?, ?)",
                            [[name, kind, rows, sha256, now, commit, taken] for name, kind, rows, sha256 in files])
            self._set_meta(con, image_text_snapshot=snapshot)
            return sum(len(f) for f in frames.values())

    def image_text_provenance(self) -> list[dict]:
        with self.connect() as con:
            cursor = con.execute("""
                SELECT origin, commit, strftime(max(coalesce(taken_at, imported_at)), '%Y-%m-%dT%H:%M:%S') AS taken_at,
                       count(*) AS files, CAST(sum(n_rows) AS BIGINT) AS rows
                FROM published_image_text_files GROUP BY origin, commit ORDER BY 3 DESC, 1""")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def upsert_image_text_compute(self, frame: pd.DataFrame, keep_existing: bool = False) -> int:
        """Counted image-text rows (model, image size, text length), each complete."""
        if frame.empty:
            return 0
        columns = [c for c in frame.columns if c in IMAGE_TEXT_COMPUTE_COLUMNS]
        frame = frame[columns]
        conflict = "DO NOTHING" if keep_existing else "DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in columns if c not in ("model", "image_size", "text_length"))
        with self.transaction() as con:
            before = con.execute("SELECT count(*) FROM image_text_compute").fetchall()[0][0]
            con.register("incoming", frame)
            try:
                con.execute(f"INSERT INTO image_text_compute ({', '.join(columns)}) SELECT {', '.join(columns)} "
                            f"FROM incoming ON CONFLICT (model, image_size, text_length) {conflict}")
            finally:
                con.unregister("incoming")
            return con.execute("SELECT count(*) FROM image_text_compute").fetchall()[0][0] - before

    def image_text_catalog(self) -> pd.DataFrame:
        """The image-text zoo's details with each checkpoint's image size."""
        with self.connect() as con:
            return con.execute("""SELECT t.*, c.input_h, c.arch_class, c.family, c.pretrain_data, c.data_scale
                                  FROM image_text t JOIN checkpoints c USING (checkpoint)
                                  ORDER BY checkpoint""").df()

    def image_text_compute_frame(self) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(f"SELECT {', '.join(IMAGE_TEXT_COMPUTE_COLUMNS)} FROM image_text_compute "
                               "ORDER BY model, image_size, text_length").df()

    COMPUTE_COLUMNS = ("arch", "img_size", "num_classes", "img_width", "params", "flops", "macs",
                       "attention_flops", "flops_by_module", "reparameterizable", "counter",
                       "device", "error", "torch_version",
                       "timm_version", "created_at")

    def upsert_compute(self, frame: pd.DataFrame, keep_existing: bool = False) -> int:
        """Counted rows, each complete; `keep_existing` leaves rows already counted here alone."""
        if frame.empty:
            return 0
        frame = frame[[c for c in self.COMPUTE_COLUMNS if c in frame.columns]]
        columns = ", ".join(frame.columns)
        conflict = "DO NOTHING" if keep_existing else "DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in frame.columns
            if c not in ("arch", "img_size", "num_classes"))
        with self.transaction() as con:
            before = con.execute("SELECT count(*) FROM compute").fetchall()[0][0]
            con.register("incoming", frame)
            try:
                con.execute(f"INSERT INTO compute ({columns}) SELECT {columns} FROM incoming "
                            f"ON CONFLICT (arch, img_size, num_classes) {conflict}")
            finally:
                con.unregister("incoming")
            return con.execute("SELECT count(*) FROM compute").fetchall()[0][0] - before

    TRAINING_COLUMNS = ("checkpoint", "train_flops", "pretrain_flops", "finetune_flops", "samples_seen",
                        "n_stages", "stages", "confidence", "sources", "complete", "note", "train_flops_low",
                        "train_flops_high", "placement", "missing_stages", "lineage", "bracket_low", "bracket_high",
                        "bracket_note")

    def replace_training_compute(self, frame: pd.DataFrame) -> int:
        """Every checkpoint's training-compute estimate (unknown ones too), in one transaction."""
        frame = frame.reindex(columns=list(self.TRAINING_COLUMNS))
        with self.transaction() as con:
            con.execute("DELETE FROM training_compute")
            self._insert(con, "training_compute", frame)
        return len(frame)

    def training_compute_frame(self, checkpoint: str | None = None) -> pd.DataFrame:
        """The estimates joined to each checkpoint's class, family and data (one checkpoint, or all)."""
        where, values = ("WHERE t.checkpoint = ?", [checkpoint]) if checkpoint else ("", [])
        with self.connect() as con:
            return con.execute(f"""SELECT t.*, c.arch, c.arch_class, c.family, c.pretrain_data, c.data_scale
                                   FROM training_compute t JOIN checkpoints c USING (checkpoint) {where}
                                   ORDER BY t.checkpoint""", values).df()

    def training_coverage(self) -> pd.DataFrame:
        """Per class and data scale, the ImageNet-zoo checkpoints with a published ImageNet top-1
        (timm's test models aside): how many have a training-compute estimate on the axis, how
        many only a lower bound, and how many none."""
        with self.connect() as con:
            return con.execute("""
                WITH published AS (SELECT DISTINCT checkpoint FROM published_results
                                   WHERE dataset = 'imagenet' AND top1 IS NOT NULL)
                SELECT c.arch_class, coalesce(c.data_scale, 'unknown') AS data_scale, count(*) AS checkpoints,
                       count(t.train_flops) AS estimated,
                       count(*) FILTER (WHERE t.train_flops IS NULL AND t.train_flops_low IS NOT NULL) AS lower_bound_only,
                       count(*) FILTER (WHERE t.train_flops IS NOT NULL AND NOT t.complete) AS placed_from_a_bound
                FROM checkpoints c JOIN published USING (checkpoint) LEFT JOIN training_compute t USING (checkpoint)
                WHERE coalesce(c.zoo, 'imagenet') = 'imagenet' AND c.family <> 'test'
                GROUP BY ALL ORDER BY c.arch_class, data_scale""").df()

    def hub_repos(self, checkpoints: list[str]) -> dict[str, str]:
        """Each known checkpoint's Hugging Face Hub repo, as the catalog recorded it."""
        with self.connect() as con:
            rows = con.execute("SELECT checkpoint, hub_repo FROM checkpoints WHERE list_contains(?, checkpoint) "
                               "AND hub_repo IS NOT NULL", [list(checkpoints)]).fetchall()
        return dict(rows)

    def training_compute_missing(self, arch_class: str | None = None, zoo: str | None = None) -> pd.DataFrame:
        """The checkpoints with no training-compute estimate on the axis: class, data, published
        top-1, the lower bound where there is one, and why (the estimator's note)."""
        with self.connect() as con:
            return con.execute("""
                WITH imagenet AS (SELECT checkpoint, max(top1) AS top1 FROM published_results
                                  WHERE dataset = 'imagenet' GROUP BY checkpoint),
                     zeroshot AS (SELECT checkpoint, max(value) AS top1 FROM published_image_text
                                  WHERE metric = 'zeroshot:imagenet1k.top1' GROUP BY checkpoint)
                SELECT c.arch_class, c.checkpoint, coalesce(c.zoo, 'imagenet') AS zoo, c.pretrain_data,
                       coalesce(i.top1, z.top1) AS published_top1, t.train_flops_low AS lower_bound_flops,
                       coalesce(t.note, 'not estimated: run `python -m engine catalog refresh`') AS why
                FROM checkpoints c LEFT JOIN training_compute t USING (checkpoint)
                LEFT JOIN imagenet i USING (checkpoint) LEFT JOIN zeroshot z USING (checkpoint)
                WHERE t.train_flops IS NULL AND c.family <> 'test'
                  AND (? IS NULL OR lower(c.arch_class) = lower(?)) AND (? IS NULL OR coalesce(c.zoo, 'imagenet') = ?)
                ORDER BY c.arch_class, c.checkpoint""", [arch_class, arch_class, zoo, zoo]).df()

    def training_compute_inputs(self) -> dict[str, pd.DataFrame]:
        """What the estimator reads: the checkpoints, the counted FLOPs and each architecture's
        default head (for teachers)."""
        with self.connect() as con:
            return {"checkpoints": con.execute("SELECT checkpoint, arch, tag, input_h, test_h, num_classes, pretrain_data "
                                               "FROM checkpoints WHERE coalesce(zoo, 'imagenet') = 'imagenet'").df(),
                    "links": con.execute("SELECT timm_checkpoint, checkpoint FROM image_text "
                                         "WHERE timm_checkpoint IS NOT NULL ORDER BY length(checkpoint), checkpoint").df(),
                    "compute": con.execute("SELECT arch, img_size, img_width, num_classes, flops, error "
                                           "FROM compute").df(),
                    "heads": con.execute("SELECT arch, default_num_classes FROM architectures").df()}

    def compute_targets(self, missing_only: bool = True) -> pd.DataFrame:
        """(arch, img_size, img_width, num_classes) the catalog needs counted (missing_only: not yet
        counted, or failed before): each checkpoint at
        the resolution its accuracy is measured at (its test size and every published img_size)
        with its own head, and each published benchmark size with the arch's default head."""
        sql = """
            WITH needed AS (
                SELECT arch, coalesce(test_h, input_h) AS img_size,
                       coalesce(test_w, input_w) AS img_width, num_classes FROM checkpoints
                WHERE coalesce(zoo, 'imagenet') = 'imagenet'
                UNION
                SELECT c.arch, r.img_size,
                       CASE WHEN r.img_size = c.input_h THEN c.input_w ELSE r.img_size END,
                       c.num_classes
                FROM published_results r JOIN checkpoints c USING (checkpoint)
                WHERE r.img_size IS NOT NULL
                UNION
                SELECT b.arch, b.img_size,
                       CASE WHEN b.img_size = a.default_input_h THEN a.default_input_w
                            ELSE b.img_size END,
                       a.default_num_classes
                FROM published_benchmarks b JOIN architectures a USING (arch)
                WHERE a.n_pretrained > 0 AND a.registered AND b.gmacs IS NOT NULL)
            SELECT n.* FROM needed n
            LEFT JOIN compute c USING (arch, img_size, num_classes)
            WHERE NOT ? OR c.arch IS NULL OR c.error IS NOT NULL
            ORDER BY arch, img_size, num_classes"""
        with self.connect() as con:
            return con.execute(sql, [missing_only]).df()

    def compute_crosscheck(self) -> pd.DataFrame:
        """Counted MACs beside the newest published infer_gmacs for the same (arch, img_size),
        counted with the arch's default head, as timm's benchmark builds it."""
        sql = """
            WITH published AS (
                SELECT arch, img_size, arg_max(gmacs, torch || source_file) AS published_gmacs,
                       arg_max(source_file, torch || source_file) AS source_file
                FROM published_benchmarks WHERE gmacs IS NOT NULL AND gmacs > 0
                GROUP BY arch, img_size)
            SELECT p.arch, a.arch_class, a.family, p.img_size, p.published_gmacs, p.source_file,
                   c.macs / 1e9 AS counted_gmacs, c.attention_flops / 2e9 AS attention_gmacs,
                   c.params / 1e6 AS params_m, c.flops_by_module, c.reparameterizable
            FROM published p
            JOIN architectures a USING (arch)
            JOIN compute c ON c.arch = p.arch AND c.img_size = p.img_size
                          AND c.num_classes = a.default_num_classes
            WHERE c.error IS NULL
            ORDER BY p.arch, p.img_size"""
        with self.connect() as con:
            return con.execute(sql).df()

    def published_benchmark_sources(self) -> pd.DataFrame:
        """Published inference benchmark files, the newest plain (uncompiled, NCHW, AMP) first."""
        with self.connect() as con:
            return con.execute("""
                SELECT source_file, device, precision, layout, torch, compiled, count(*) AS n_rows
                FROM published_benchmarks WHERE mode = 'infer'
                GROUP BY source_file, device, precision, layout, torch, compiled
                ORDER BY compiled, layout <> 'nchw', precision <> 'amp', torch DESC, n_rows DESC,
                         source_file
            """).df()

    def eval_compute(self, zoo: str = "imagenet") -> pd.DataFrame:
        """Each checkpoint's counted cost where it is evaluated: its test size (else input size)
        with its own head, as `eval` runs it (an image-text checkpoint: its image tower, headless)."""
        with self.connect() as con:
            return con.execute("""
                SELECT c.checkpoint, c.arch, coalesce(c.test_h, c.input_h) AS img_size,
                       c.num_classes, k.flops, k.params
                FROM checkpoints c
                LEFT JOIN compute k ON k.arch = c.arch AND k.img_size = coalesce(c.test_h, c.input_h)
                                   AND k.num_classes = c.num_classes AND k.error IS NULL
                WHERE coalesce(c.zoo, 'imagenet') = ?
                ORDER BY c.checkpoint""", [zoo]).df()

    def throughputs(self, device_name: str, precision: str, published_file: str | None) -> pd.DataFrame:
        """Images/s per (arch, img_size): measured here on `device_name` at `precision`, and in a
        published benchmark file; for time estimates."""
        with self.connect() as con:
            return con.execute("""
                SELECT arch, img_size, max(throughput) AS images_per_sec, 'measured' AS source
                FROM benchmarks WHERE error IS NULL AND device_name = ? AND precision = ?
                GROUP BY arch, img_size
                UNION ALL
                SELECT arch, img_size, max(samples_per_sec), 'published'
                FROM published_benchmarks WHERE source_file = ? AND arch IS NOT NULL
                GROUP BY arch, img_size""", [device_name, precision, published_file]).df()

    def checkpoint_ids(self) -> list[str]:
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT checkpoint FROM checkpoints ORDER BY 1").fetchall()]

    def compute_frame(self) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(f"SELECT {', '.join(self.COMPUTE_COLUMNS)} FROM compute "
                               "ORDER BY arch, img_size, num_classes").df()

    def compute_for(self, arch: str, img_size: int, num_classes: int) -> dict | None:
        with self.connect() as con:
            cursor = con.execute("SELECT * FROM compute WHERE arch = ? AND img_size = ? "
                                 "AND num_classes = ?", [arch, img_size, num_classes])
            rows = cursor.fetchall()
            row = rows[0] if rows else None
            return dict(zip([d[0] for d in cursor.description], row)) if row else None

    def class_counts(self) -> pd.DataFrame:
        """Pretrained checkpoints per architecture class."""
        with self.connect() as con:
            return con.execute(
                "SELECT arch_class, count(*) AS checkpoints FROM checkpoints"
                " GROUP BY arch_class ORDER BY checkpoints DESC").df()

    def list_checkpoints(self, arch_class: str | None = None, zoo: str | None = None) -> pd.DataFrame:
        """Checkpoints with zoo, class, params and published ImageNet top-1 (when imported): the
        classifier's top-1, or for an image-text checkpoint its published zero-shot top-1."""
        sql = """
            WITH imagenet AS (
                SELECT checkpoint, max(top1) AS top1, max(param_count) AS param_count,
                       arg_max(img_size, top1) AS img_size
                FROM published_results WHERE dataset = 'imagenet' GROUP BY checkpoint),
            zeroshot AS (
                SELECT checkpoint, max(value) AS top1 FROM published_image_text
                WHERE metric = 'zeroshot:imagenet1k.top1' GROUP BY checkpoint),
            counted AS (SELECT arch, max(params) AS params FROM compute GROUP BY arch)
            SELECT c.checkpoint, coalesce(c.zoo, 'imagenet') AS zoo, c.arch_class, c.family, c.pretrain_data,
                   c.data_scale, coalesce(i.param_count, counted.params / 1e6) AS params_m,
                   i.top1 AS imagenet_top1, i.img_size AS published_img_size,
                   z.top1 AS zeroshot_imagenet_top1, t.samples_seen, t.timm_checkpoint
            FROM checkpoints c
            LEFT JOIN imagenet i USING (checkpoint)
            LEFT JOIN zeroshot z USING (checkpoint)
            LEFT JOIN image_text t USING (checkpoint)
            LEFT JOIN counted ON counted.arch = c.arch
            WHERE (? IS NULL OR lower(c.arch_class) = lower(?)) AND (? IS NULL OR coalesce(c.zoo, 'imagenet') = ?)
            ORDER BY c.checkpoint"""
        with self.connect() as con:
            return con.execute(sql, [arch_class, arch_class, zoo, zoo]).df()

    def info(self) -> dict:
        """Row counts, joins, schema version and file facts, for `db info` and the sidebar."""
        with self.connect() as con:
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in schema.TABLES}
            joins = dict(zip(
                ("published_results_joined", "imagenet_results_joined",
                 "published_benchmarks_joined", "checkpoints_without_class"),
                con.execute("""
                    SELECT
                      (SELECT count(*) FROM published_results r
                         JOIN checkpoints c USING (checkpoint)),
                      (SELECT count(*) FROM published_results r
                         JOIN checkpoints c USING (checkpoint) WHERE r.dataset = 'imagenet'),
                      (SELECT count(*) FROM published_benchmarks b
                         JOIN architectures a USING (arch)),
                      (SELECT count(*) FROM checkpoints
                         WHERE arch_class IS NULL OR arch_class = '')""").fetchall()[0]))
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"path": str(self.path), "size_bytes": size,
                "schema_version": int(meta.get("schema_version", 0)),
                "tables": counts, "joins": joins,
                "catalog_refreshed_at": meta.get("catalog_refreshed_at"),
                "catalog_timm_version": meta.get("catalog_timm_version"),
                "catalog_complete": meta.get("catalog_complete") == meta.get("catalog_timm_version"),
                "published": self.published_provenance()}

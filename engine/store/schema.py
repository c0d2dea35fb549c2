"""The DuckDB schema: forward-only migrations and the tables they make."""

# Forward-only migrations: (version, statements). Append; never edit a released step.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
        """CREATE TABLE architectures (
            arch VARCHAR PRIMARY KEY, module VARCHAR, arch_class VARCHAR NOT NULL,
            family VARCHAR, registered BOOLEAN NOT NULL, n_pretrained INTEGER, note VARCHAR,
            default_input_h INTEGER, default_input_w INTEGER, default_num_classes INTEGER)""",
        """CREATE TABLE checkpoints (
            checkpoint VARCHAR PRIMARY KEY, arch VARCHAR NOT NULL, tag VARCHAR, module VARCHAR,
            arch_class VARCHAR NOT NULL, family VARCHAR, pretrain_data VARCHAR,
            finetune_data VARCHAR, data_scale VARCHAR, hub_repo VARCHAR,
            input_h INTEGER, input_w INTEGER, test_h INTEGER, test_w INTEGER,
            crop_pct DOUBLE, test_crop_pct DOUBLE, crop_mode VARCHAR, interpolation VARCHAR,
            mean DOUBLE[], std DOUBLE[], num_classes INTEGER, license VARCHAR,
            timm_version VARCHAR)""",
        """CREATE TABLE compute (
            arch VARCHAR, img_size INTEGER, num_classes INTEGER, img_width INTEGER,
            params BIGINT, flops DOUBLE, macs DOUBLE, attention_flops DOUBLE,
            flops_by_module JSON, reparameterizable BOOLEAN, counter VARCHAR,
            device VARCHAR, error VARCHAR, torch_version VARCHAR, timm_version VARCHAR,
            created_at TIMESTAMP, PRIMARY KEY (arch, img_size, num_classes))""",
        """CREATE TABLE published_results (
            source_file VARCHAR NOT NULL, dataset VARCHAR NOT NULL, model VARCHAR NOT NULL,
            checkpoint VARCHAR, img_size INTEGER, top1 DOUBLE, top5 DOUBLE,
            param_count DOUBLE, crop_pct DOUBLE, interpolation VARCHAR)""",
        """CREATE TABLE published_benchmarks (
            source_file VARCHAR NOT NULL, mode VARCHAR, device VARCHAR, precision VARCHAR,
            layout VARCHAR, torch VARCHAR, cuda VARCHAR, compiled BOOLEAN,
            model VARCHAR NOT NULL, arch VARCHAR, img_size INTEGER, batch_size INTEGER,
            samples_per_sec DOUBLE, step_time_ms DOUBLE, gmacs DOUBLE, macts DOUBLE,
            param_count DOUBLE)""",
        """CREATE TABLE published_files (
            source_file VARCHAR PRIMARY KEY, kind VARCHAR, n_rows INTEGER,
            sha256 VARCHAR, imported_at TIMESTAMP)""",
        """CREATE TABLE reference_points (
            source VARCHAR NOT NULL, model VARCHAR NOT NULL, arch_class VARCHAR,
            pretrain_data VARCHAR, compute_value DOUBLE, compute_unit VARCHAR,
            imagenet_top1 DOUBLE, params_m DOUBLE, gflops DOUBLE, resolution VARCHAR,
            notes VARCHAR)""",
        """CREATE TABLE evals (
            cache_key VARCHAR PRIMARY KEY, checkpoint VARCHAR NOT NULL, hub_revision VARCHAR,
            dataset_id VARCHAR, dataset_fingerprint VARCHAR, label_map VARCHAR,
            img_size INTEGER, crop_pct DOUBLE, crop_mode VARCHAR, interpolation VARCHAR,
            precision VARCHAR, device_name VARCHAR, n_images INTEGER, top1 DOUBLE,
            top5 DOUBLE, nll DOUBLE, ece DOUBLE, seconds DOUBLE, images_per_sec DOUBLE,
            torch_version VARCHAR, timm_version VARCHAR, cuda_version VARCHAR,
            details JSON, created_at TIMESTAMP)""",
        """CREATE TABLE benchmarks (
            cache_key VARCHAR PRIMARY KEY, checkpoint VARCHAR, arch VARCHAR NOT NULL,
            img_size INTEGER, batch_size INTEGER, precision VARCHAR, channels_last BOOLEAN,
            compiled BOOLEAN, device_name VARCHAR, throughput DOUBLE, latency_p50_ms DOUBLE,
            latency_p90_ms DOUBLE, peak_memory_mb DOUBLE, error VARCHAR, torch_version VARCHAR,
            timm_version VARCHAR, cuda_version VARCHAR, details JSON, created_at TIMESTAMP)""",
        """CREATE TABLE jobs (
            id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, spec JSON, cache_key VARCHAR,
            state VARCHAR NOT NULL, progress DOUBLE, heartbeat TIMESTAMP, error VARCHAR,
            created_at TIMESTAMP, started_at TIMESTAMP, finished_at TIMESTAMP)""",
    ]),
    (2, [  # the job queue: who runs a job, where, its live progress and cancellation
        "ALTER TABLE jobs ADD COLUMN label VARCHAR",
        "ALTER TABLE jobs ADD COLUMN device VARCHAR",
        "ALTER TABLE jobs ADD COLUMN worker VARCHAR",
        "ALTER TABLE jobs ADD COLUMN attempts INTEGER DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN DEFAULT false",
        "ALTER TABLE jobs ADD COLUMN detail JSON",
        "ALTER TABLE jobs ADD COLUMN result_key VARCHAR",
        """CREATE TABLE workers (
            id VARCHAR PRIMARY KEY, host VARCHAR, pid INTEGER, device VARCHAR,
            embedded BOOLEAN, started_at TIMESTAMP, heartbeat TIMESTAMP, job VARCHAR)""",
    ]),
    (3, [  # where each published file came from: the shipped snapshot, `catalog sync` or `import`
        "ALTER TABLE published_files ADD COLUMN origin VARCHAR",
        "ALTER TABLE published_files ADD COLUMN commit VARCHAR",
        "ALTER TABLE published_files ADD COLUMN taken_at TIMESTAMP",
    ]),
    (4, [  # linear probes of frozen features on the user's own labelled folders (engine.probe)
        """CREATE TABLE probes (
            cache_key VARCHAR PRIMARY KEY, checkpoint VARCHAR NOT NULL, hub_revision VARCHAR,
            dataset_name VARCHAR, dataset_root VARCHAR, dataset_fingerprint VARCHAR,
            val_fingerprint VARCHAR, n_images INTEGER, n_classes INTEGER, classes JSON,
            protocol VARCHAR, folds INTEGER, shots INTEGER, seed INTEGER, feature_dim INTEGER,
            feature_source VARCHAR, img_size INTEGER,
            accuracy DOUBLE, accuracy_low DOUBLE, accuracy_high DOUBLE,
            balanced_accuracy DOUBLE, balanced_accuracy_low DOUBLE, balanced_accuracy_high DOUBLE,
            macro_f1 DOUBLE, macro_f1_low DOUBLE, macro_f1_high DOUBLE,
            nll DOUBLE, nll_low DOUBLE, nll_high DOUBLE,
            extract_seconds DOUBLE, skipped_images INTEGER, torch_version VARCHAR,
            timm_version VARCHAR, sklearn_version VARCHAR, details JSON, created_at TIMESTAMP)""",
    ]),
]
MIGRATIONS.append(
    (5, [  # training compute per checkpoint, estimated from sourced recipes (engine.training_compute)
        """CREATE TABLE training_compute (
            checkpoint VARCHAR PRIMARY KEY, train_flops DOUBLE, pretrain_flops DOUBLE,
            finetune_flops DOUBLE, samples_seen DOUBLE, n_stages INTEGER, stages JSON,
            confidence VARCHAR, sources JSON, complete BOOLEAN, note VARCHAR)""",
    ]))
MIGRATIONS.append(
    (6, [  # the image-text zoo (OpenCLIP): catalog details, tower FLOPs, published tables, zero-shot runs
        "ALTER TABLE checkpoints ADD COLUMN zoo VARCHAR",
        """CREATE TABLE image_text (
            checkpoint VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, tag VARCHAR NOT NULL,
            data_source VARCHAR, data_label VARCHAR, data_pairs DOUBLE, samples_seen DOUBLE,
            samples_how VARCHAR, quick_gelu BOOLEAN, needs_quick_gelu_name BOOLEAN,
            context_length INTEGER, image_tower VARCHAR, text_tower VARCHAR,
            timm_checkpoint VARCHAR, timm_link_evidence VARCHAR, open_clip_version VARCHAR)""",
        """CREATE TABLE image_text_compute (
            model VARCHAR, image_size INTEGER, text_length INTEGER, image_params BIGINT,
            text_params BIGINT, image_flops DOUBLE, text_flops DOUBLE, train_forward_flops DOUBLE,
            counter VARCHAR, error VARCHAR, torch_version VARCHAR, open_clip_version VARCHAR,
            created_at TIMESTAMP, PRIMARY KEY (model, image_size, text_length))""",
        """CREATE TABLE published_image_text (
            source_file VARCHAR NOT NULL, model VARCHAR NOT NULL, tag VARCHAR NOT NULL,
            checkpoint VARCHAR, metric VARCHAR NOT NULL, value DOUBLE)""",
        """CREATE TABLE published_image_text_profile (
            source_file VARCHAR NOT NULL, model VARCHAR NOT NULL, image_size INTEGER,
            image_width INTEGER, text_width INTEGER, embed_dim INTEGER, mparams DOUBLE,
            image_mparams DOUBLE, text_mparams DOUBLE, gflops DOUBLE, image_gflops DOUBLE,
            text_gflops DOUBLE)""",
        """CREATE TABLE published_image_text_files (
            source_file VARCHAR PRIMARY KEY, kind VARCHAR, n_rows INTEGER, sha256 VARCHAR,
            imported_at TIMESTAMP, origin VARCHAR, commit VARCHAR, taken_at TIMESTAMP)""",
        """CREATE TABLE zeroshots (
            cache_key VARCHAR PRIMARY KEY, checkpoint VARCHAR NOT NULL, hub_revision VARCHAR,
            dataset_id VARCHAR, dataset_name VARCHAR, dataset_root VARCHAR,
            dataset_fingerprint VARCHAR, classnames JSON, templates_name VARCHAR, templates JSON,
            img_size INTEGER, crop_mode VARCHAR, interpolation VARCHAR, precision VARCHAR,
            device_name VARCHAR, n_images INTEGER, n_classes INTEGER, top1 DOUBLE, top5 DOUBLE,
            balanced_accuracy DOUBLE, seconds DOUBLE, images_per_sec DOUBLE,
            skipped_images INTEGER, torch_version VARCHAR, open_clip_version VARCHAR,
            cuda_version VARCHAR, details JSON, created_at TIMESTAMP)""",
    ]))
MIGRATIONS.append(
    (7, [  # who asked for each job (the app's signed-in user, or cli:<os user>)
        "ALTER TABLE jobs ADD COLUMN requested_by VARCHAR",
    ]))
MIGRATIONS.append(
    (8, [  # training compute over each checkpoint's lineage, as a range; the coverage bracket of unknown ones
        "ALTER TABLE training_compute ADD COLUMN train_flops_low DOUBLE",
        "ALTER TABLE training_compute ADD COLUMN train_flops_high DOUBLE",
        "ALTER TABLE training_compute ADD COLUMN placement VARCHAR",
        "ALTER TABLE training_compute ADD COLUMN missing_stages VARCHAR",
        "ALTER TABLE training_compute ADD COLUMN lineage JSON",
        "ALTER TABLE training_compute ADD COLUMN bracket_low DOUBLE",
        "ALTER TABLE training_compute ADD COLUMN bracket_high DOUBLE",
        "ALTER TABLE training_compute ADD COLUMN bracket_note VARCHAR",
        # an upgraded database re-estimates over the lineage at its next start (the app refreshes an incomplete catalog)
        "DELETE FROM meta WHERE key = 'catalog_complete'",
    ]))
MIGRATIONS.append(
    (9, [  # a failed or cancelled job hidden from the queue's list by Clear (the row stays)
        "ALTER TABLE jobs ADD COLUMN cleared_at TIMESTAMP",
    ]))
MIGRATIONS.append(
    (10, [  # each identity's last sign-out: a session signed in before it can no longer run (ui.access)
        """CREATE TABLE sign_outs (identity VARCHAR PRIMARY KEY, signed_out_at DOUBLE NOT NULL)""",
    ]))
SCHEMA_VERSION = MIGRATIONS[-1][0]

TABLES = ("architectures", "checkpoints", "compute", "published_results", "published_benchmarks",
          "published_files", "reference_points", "evals", "benchmarks", "jobs", "workers", "probes",
          "training_compute", "image_text", "image_text_compute", "published_image_text",
          "published_image_text_profile", "published_image_text_files", "zeroshots", "sign_outs")

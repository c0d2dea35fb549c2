"""What exists and what was published: the taxonomy, the timm and OpenCLIP catalogs, their published
tables and shipped snapshots, the Hub, model cards and training compute. Import the module you need."""

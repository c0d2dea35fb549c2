"""What the pages share: cached loaders, URL-backed widgets, chart helpers (never pages)."""

"""Stage `download`: put a BSTLD-format dataset in `data.root`.

With `data.source: synthetic` it generates the synthetic scenes. With
`bstld` it fetches any `data.urls`, verifies `data.sha256`, and extracts
the archives found in `data.archives_dir`. Either way `data.root` is
replaced as a whole only on success.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

logger = logging.getLogger(__name__)

# Archives of the released dataset. Registration at the dataset's site is
# required, so the stage never assumes it can download them itself.
EXPECTED_ARCHIVES = ("dataset_train_rgb.zip", "dataset_test_rgb.zip", "dataset_additional_rgb.zip")


def _generate_synthetic(root: Path, config: DictConfig) -> dict[str, Any]:
    from blindspots.data.synthetic import generate_dataset
    from blindspots.runinfo import atomic_path

    with atomic_path(root) as staging:
        staging.mkdir()
        summary = generate_dataset(staging, config.data.synthetic)
    return {"synthetic": summary}


def _extract_bstld(root: Path, config: DictConfig) -> dict[str, Any]:
    from blindspots.data import archives

    data = config.data
    archives_dir = Path(data.archives_dir)
    urls = dict(data.urls)
    checksums = dict(data.sha256)
    logger.info("inputs: archives_dir=%s, %d URL(s), %d checksum(s)", archives_dir, len(urls), len(checksums))

    # fetch_all verifies the files it handles, so each file is hashed once.
    archives.fetch_all(urls, archives_dir, checksums)
    archives.verify_checksums(archives_dir, {name: digest for name, digest in checksums.items() if name not in urls})
    found = archives.find_archives(archives_dir)
    if not found:
        raise archives.ArchiveError(
            f"no zip archives found in {archives_dir}. Register at the Bosch Small Traffic Lights Dataset site, "
            f"download {', '.join(EXPECTED_ARCHIVES)} (the first two as numbered volumes .001, .002, ...) into "
            f"{archives_dir}, or set data.source: synthetic."
        )
    names = [archive.name for archive in found]
    missing = [name for name in EXPECTED_ARCHIVES if name not in names]
    if missing:
        logger.warning(
            "archives missing from %s: %s. The prepare stage needs train.yaml and test.yaml, and additional_train.yaml "
            "unless prepare.use_additional is false.",
            archives_dir,
            ", ".join(missing),
        )
    for archive in found:
        logger.info("archive %s: %d part(s), %.1f MB", archive.name, len(archive.parts), archive.size / 1e6)

    files = archives.extract_archives(found, root)
    logger.info("extracted %d files into %s", sum(files.values()), root)
    return {
        "archives": {archive.name: [part.name for part in archive.parts] for archive in found},
        "files": files,
        "sha256_verified": sorted(checksums),
    }


def run(config: DictConfig, args: argparse.Namespace) -> None:
    """Create `data.root` from the synthetic generator or the BSTLD archives."""
    from blindspots.config.loader import to_dict
    from blindspots.runinfo import stage_timer, write_run_record

    root = Path(config.data.root)
    with stage_timer("download"):
        logger.info("source: %s, output: %s", config.data.source, root)
        if config.data.source == "synthetic":
            extra = _generate_synthetic(root, config)
        else:
            extra = _extract_bstld(root, config)
        write_run_record(root, "download", to_dict(config.data), extra)
        logger.info("outputs: %s", root)

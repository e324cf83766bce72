"""Build the API reference (mkdocs + mkdocstrings, `mkdocs.yml`) with every warning an error.

    .venv/bin/python docs/build.py [--site-dir DIR]      # default: site/

The package installs `applications/` and `tuning/` inside `keras_modern_cnn`; the editable
install maps them with an import hook, which the documentation tool's module finder does not
follow. So the build lays the package out as installed, in a temporary folder of symbolic
links, and points mkdocstrings there (KMC_DOCS_LAYOUT). `--strict`: a docstring that documents
a parameter the signature lacks, or an Args entry that does not parse, fails the build.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


def installed_layout(folder):
    """`folder/keras_modern_cnn`: symbolic links to the package's files, with `applications`
    and `tuning` inside it as they install."""
    package = pathlib.Path(folder) / "keras_modern_cnn"
    package.mkdir()
    for entry in (REPOSITORY / "keras_modern_cnn").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in ("applications", "tuning"):
        (package / name).symlink_to(REPOSITORY / name)
    return pathlib.Path(folder)


def build(site_dir):
    """Run `mkdocs build --strict` into `site_dir`; returns the completed process."""
    with tempfile.TemporaryDirectory() as folder:
        layout = installed_layout(folder)
        # TensorFlow's C++ start-up lines (the modules are imported) are not the build's.
        environment = {**os.environ, "KMC_DOCS_LAYOUT": str(layout), "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
             str(REPOSITORY / "mkdocs.yml"), "--site-dir", str(pathlib.Path(site_dir).resolve())],
            cwd=REPOSITORY, env=environment, capture_output=True, text=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-dir", default=str(REPOSITORY / "site"))
    args = parser.parse_args()
    result = build(args.site_dir)
    sys.stderr.write(result.stderr)
    if result.returncode == 0:
        print(f"API reference: {pathlib.Path(args.site_dir) / 'index.html'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

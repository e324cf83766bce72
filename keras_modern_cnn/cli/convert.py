"""`kmc convert MODEL SOURCE OUTPUT`: pretrained weights into a `.keras` or `.weights.h5` file.

SOURCE is anything `weights=` takes: a preset of MODEL (`imagenet`, `IMAGENET1K_V2`, ...), a
PyTorch state dict (`.pth`, `.pt`, `.bin`), a `.safetensors` file, a keras.applications `.h5` or
an `hf://` reference. The output is written atomically and never replaces a file without
`--overwrite`.
"""

import os

OUTPUT_SUFFIXES = (".keras", ".weights.h5")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "convert", help="convert pretrained weights (a preset, PyTorch or safetensors file) "
        "into a .keras or .weights.h5 file",
        description="Build MODEL with SOURCE's weights (converted from torchvision's or timm's "
        "layout where needed; `kmc info MODEL` lists its presets) and write OUTPUT: a .keras "
        "model (loads anywhere with keras.saving.load_model) or a .weights.h5 file (loads into "
        "the same builder with `weights=`).",
    )
    parser.add_argument("model", help="registered name (see `kmc list`)")
    parser.add_argument("source", help="a preset (imagenet, IMAGENET1K_V1, ...), a .pth/.pt/.bin/"
                        ".safetensors/.h5 file or hf://owner/repo")
    parser.add_argument("output", help="the file to write: .keras or .weights.h5")
    parser.add_argument("--include-preprocessing", action="store_true",
                        help="start the model with the weights' preprocessing (raw 0-255 images "
                        "of any size in); .keras only")
    parser.add_argument("--no-top", dest="include_top", action="store_false",
                        help="leave the classifier out (the source's head is not converted)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.set_defaults(run=run)


def run(args):
    from keras_modern_cnn.registry import get_spec

    spec = get_spec(args.model)
    output = args.output
    if not output.endswith(OUTPUT_SUFFIXES):
        raise ValueError(
            f"OUTPUT must end in {' or '.join(OUTPUT_SUFFIXES)}. Received: output={output!r}"
        )
    if args.include_preprocessing and not output.endswith(".keras"):
        raise ValueError(
            "--include-preprocessing adds a layer, which a .weights.h5 file does not record: "
            f"write a .keras file. Received: output={output!r}"
        )
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"No such directory: {parent!r}. Received: output={output!r}")
    # As `kmc predict --output`: never a folder or a file a kmc folder owns (a run's model.keras),
    # an existing file only with --overwrite.
    from keras_modern_cnn.ownership import check_output_file, record_output_file
    from keras_modern_cnn.rundir import LEGACY_RUN

    manifest = check_output_file(output, overwrite=args.overwrite, legacy_patterns=LEGACY_RUN)

    kwargs = dict(weights=args.source, include_top=args.include_top)
    if args.include_preprocessing:
        kwargs["include_preprocessing"] = True
    if not args.include_top:
        kwargs["pooling"] = "avg"
    model = spec.builder(**kwargs)
    record_output_file(output, manifest)
    if output.endswith(".keras"):
        from keras_modern_cnn.saving import save_model

        save_model(model, output)
    else:
        from keras_modern_cnn.files import atomic_write

        atomic_write(output, model.save_weights)
    print(f"converted {args.source} into {spec.name} ({model.count_params():,} parameters"
          f"{', with its preprocessing' if args.include_preprocessing else ''}): {output}")

"""Nothing a user keeps is lost or silently misread (issue 27), one test per rule:

- ownership: kmc deletes or replaces only what it recorded (`.kmc-manifest.json`); `--overwrite`
  next to anything else, export targets such as `.` or a run, bad project names: one line;
- locks: one writer per run directory or tuning project, named to the second; never stuck
  after `kill -9`; readers do not lock;
- run files validated on read, a run's state decided from all of them;
- one reading of the data: one decoder and scaling for training and `kmc predict`, classes
  matched by name, `.npz` value ranges, bad files caught up front by name, hidden files ignored;
- signals and disks: Ctrl-C / SIGTERM stop where a rerun resumes (exit 130 / 143), a full disk
  is one line naming the path and the free space, the old file intact.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from keras_modern_cnn import files, ownership, rundir
from keras_modern_cnn.cli import main
from keras_modern_cnn.config import config_to_json, resolve_config

independent = pytest.mark.backend_independent


def one_line_error(capsys, *contains, status=None, result=None):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in contains:
        assert text in err, err
    return err


def snapshot(root):
    return {path.relative_to(root): path.read_bytes() for path in root.rglob("*") if path.is_file()}


# A finished run on disk, written as `kmc train` writes one (no model is trained: the rules
# read files only). `model.keras` need only exist for the state checks.
RUN = dict(epochs=2, train_examples=64, test_examples=32, batch_size=32)


def fake_run(directory, *, manifest=True, **changes):
    directory.mkdir(parents=True, exist_ok=True)
    config = resolve_config("bn_lenet", mixed_precision=False, output_dir=str(directory), **RUN)
    (directory / "run.json").write_text(config_to_json(config, {"class_names": ["a", "b"],
                                                                "num_classes": 2}))
    (directory / "history.csv").write_text("epoch,loss\n1,1.0\n2,0.5\n")
    (directory / "model.keras").write_bytes(b"model")
    metrics = dict(model="bn_lenet", dataset="shapes", task="classification", epochs=2,
                   test_accuracy=0.5, test_loss=1.0, examples_per_second=1.0, parameters=1,
                   wall_time_seconds=1.0)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    (directory / "logs").mkdir(exist_ok=True)
    if manifest:
        ownership.record(str(directory), "run", rundir.RUN_ARTEFACTS)
    return directory


RERUN = ["train", "bn_lenet", *[f"--{k.replace('_', '-')}={v}" for k, v in RUN.items()],
         "--no-mixed-precision", "--quiet"]


# ---------------------------------------------------------------------------------- ownership

@independent
def test_overwrite_deletes_only_what_kmc_recorded_and_names_what_is_in_the_way(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    (run / "notes.md").write_text("mine")
    before = snapshot(run)
    assert main([*RERUN, "--output-dir", str(run), "--overwrite"]) == 2
    one_line_error(capsys, "--overwrite replaces only what kmc wrote", "notes.md (not written by kmc)")
    assert snapshot(run) == before

    # A fresh folder holding the user's own logs/ and backup/: refused with or without
    # --overwrite; so is a new run among other files (a run never mixes its files with yours).
    mine = tmp_path / "mine"
    (mine / "logs").mkdir(parents=True)
    (mine / "backup").mkdir()
    (mine / "logs" / "thesis.txt").write_text("keep")
    for extra, message in [(["--overwrite"], "logs (not written by kmc)"),
                           ([], "holds files of a run without its run.json")]:
        assert main([*RERUN, "--output-dir", str(mine), *extra]) == 2
        one_line_error(capsys, message)
    (mine / "logs").rename(mine / "papers")
    shutil.rmtree(mine / "backup")
    assert main([*RERUN, "--output-dir", str(mine)]) == 2
    one_line_error(capsys, "holds papers, which kmc did not write")
    assert (mine / "papers" / "thesis.txt").read_text() == "keep"


@independent
def test_the_overwrite_plan_removes_recorded_entries_keeps_outputs_and_hidden_files(tmp_path):
    run = fake_run(tmp_path / "run")
    ownership.record(str(run), "run", ["model.onnx"], role="output")  # an export beside the model
    (run / "model.onnx").write_bytes(b"onnx")
    (run / ".DS_Store").write_bytes(b"finder")
    (run / "model.tmp.keras").write_bytes(b"left by a kill")  # a recorded file's temporary
    config = resolve_config("bn_lenet", mixed_precision=False, output_dir=str(run), **RUN)
    plan = rundir.plan_run(config, overwrite=True)
    try:
        plan.begin(config, {})
    finally:
        plan.release()
    assert sorted(p.name for p in run.iterdir()) == [
        ".DS_Store", ".kmc-lock", ".kmc-manifest.json", "model.onnx", "run.json"]
    manifest = ownership.read_manifest(str(run))
    assert manifest.entries["model.onnx"] == "output" and manifest.entries["logs"] == "own"


@independent
def test_a_run_written_before_manifests_is_recognised_by_its_run_json(tmp_path, capsys):
    run = fake_run(tmp_path / "old", manifest=False)
    assert rundir.run_manifest(str(run)).legacy
    (run / "extra.txt").write_text("mine")
    assert main([*RERUN, "--output-dir", str(run), "--overwrite"]) == 2
    one_line_error(capsys, "extra.txt (not written by kmc)")


@independent
@pytest.mark.parametrize("target, reason", [
    (".", "current folder"), ("..", "current folder or a folder above it"),
    ("{models}", "it holds the model being exported"),
    ("{run}", "is a run folder of kmc"), ("{mine}", "folder kmc export did not write"),
    ("{run}/model.keras", "belongs to the run"), ("{models}/m.keras", "it is the model being exported"),
])
def test_export_never_replaces_what_it_did_not_write(tmp_path, capsys, monkeypatch, target, reason):
    models = tmp_path / "models"
    models.mkdir()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(models / "m.keras")
    run = fake_run(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_bytes(b"photo")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path / "work")
    target = target.format(models=models, run=run, mine=tmp_path / "mine")
    format = ["--format", "keras"] if target.endswith(".keras") else []
    assert main(["export", str(models / "m.keras"), *format, "--output", target, "--overwrite"]) == 2
    one_line_error(capsys, "Cannot export to", reason)
    assert snapshot(tmp_path) == before


@independent
@pytest.mark.parametrize("name", [".", "..", "a/b", "", ".hidden"])
def test_tuning_project_names_are_one_plain_folder_name(tmp_path, capsys, name):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["tune", "lenet", "--output-dir", str(tmp_path / "out"), "--project-name", name,
                 "--overwrite", "--quiet"]) == 2
    one_line_error(capsys, "`project_name` must be one plain folder name", f"project_name={name!r}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@independent
def test_tuning_project_overwrite_and_export_refuse_what_a_search_did_not_write(tmp_path, capsys):
    from keras_modern_cnn.tuning import search

    project = tmp_path / "lenet"
    project.mkdir()
    (project / "oracle.json").write_text("{}")  # an older search, recognised by its oracle
    (project / "trial_0").mkdir()
    (project / "my_results.xlsx").write_bytes(b"mine")
    with pytest.raises(ValueError, match="my_results.xlsx .not written by a kmc search"):
        search.prepare_project(str(project), overwrite=True)
    (project / "my_results.xlsx").unlink()
    search.prepare_project(str(project), overwrite=True)  # the search's own files go
    assert sorted(p.name for p in project.iterdir()) == [".kmc-lock", ".kmc-manifest.json"]

    exported = tmp_path / "served"
    exported.mkdir()
    (exported / "keep.txt").write_text("mine")
    for extra, message in [([], "already exists; pass overwrite=True"),
                           (["--overwrite"], "folder kmc export did not write")]:
        assert main(["tune", "lenet", "--output-dir", str(tmp_path), "--export", str(exported),
                     "--quiet", *extra]) == 2
        one_line_error(capsys, message)  # before any data is read or trial runs
    assert (exported / "keep.txt").read_text() == "mine"


@independent
def test_predict_and_compare_outputs_never_replace_a_file_of_a_run_or_of_the_user(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    before = snapshot(run)
    assert main(["predict", str(run / "model.keras"), "x.png", "--output", str(run / "metrics.json"),
                 "--overwrite"]) == 2
    one_line_error(capsys, "metrics.json belongs to the run")
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "results.md").write_text("# my notes")
    assert main(["compare", "bn_lenet", "--output-dir", str(tmp_path / "cmp"), "--quiet"]) == 2
    one_line_error(capsys, "holds results.md, which kmc compare did not write")
    assert main(["compare", "bn_lenet", "--output-dir", str(run), "--quiet"]) == 2
    one_line_error(capsys, "is a run folder of kmc")
    assert snapshot(run) == before and (tmp_path / "cmp" / "results.md").read_text() == "# my notes"


@independent
def test_a_malformed_manifest_is_named_never_ignored(tmp_path):
    run = fake_run(tmp_path / "run")
    for text, field in [("not json", "not readable JSON"), ('{"format": 1, "kind": "box"}', "`kind`"),
                        ('{"format": 1, "kind": "run", "entries": {"../x": "own"}}', "`entries`")]:
        (run / ".kmc-manifest.json").write_text(text)
        with pytest.raises(ValueError, match=f".kmc-manifest.json is not a kmc manifest: .*{field}"):
            ownership.read_manifest(str(run))


# ---------------------------------------------------------------------------------------- locks

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from keras_modern_cnn.ownership import DirectoryLock
    DirectoryLock(sys.argv[1]).acquire()
    open(sys.argv[2], "w").close()
    time.sleep(600)
""")


def hold_lock(directory, tmp_path):
    marker = tmp_path / "locked"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(directory), str(marker)])
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return holder


@pytest.mark.slow  # real kmc processes, stopped and resumed
@independent
def test_a_locked_run_directory_refuses_a_second_writer_naming_it_until_the_holder_dies(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    holder = hold_lock(run, tmp_path)
    try:
        before = snapshot(run)
        for extra in ([], ["--overwrite"], ["--resume", "--epochs", "3"]):
            assert main([*RERUN, "--output-dir", str(run), *extra]) == 2
            one_line_error(capsys, "is being written by another kmc process", f"pid {holder.pid} on ")
        assert snapshot(run) == before
    finally:
        holder.kill()  # kill -9: the kernel drops the lock
        holder.wait()
    lock = ownership.DirectoryLock(run).acquire()
    with ownership.DirectoryLock(run):  # re-entrant within a process
        pass
    assert lock.held
    lock.release()
    assert json.loads((run / ".kmc-lock").read_text())["pid"] == os.getpid()


# ------------------------------------------------------------------------------ run files on read

@independent
@pytest.mark.parametrize("change, message", [
    (lambda r: r["config"].update(epochs="2"), "field `config.epochs`: `epochs` must be an integer"),
    (lambda r: r["config"].update(colour="red"), "field `config.colour` is not a run setting"),
    (lambda r: r["config"].update(model="lenet7"), "field `config.model`"),
    (lambda r: r.pop("config"), "field `config` must be an object"),
    (lambda r: r["data"].update(class_names=["a"]), "`data.class_names` holds 1 names"),
    (lambda r: r["data"].update(channels="1"), "field `data.channels` must be an integer"),
])
def test_a_hand_edited_run_json_is_one_line_naming_the_field_never_a_retrain(tmp_path, capsys, change, message):
    run = fake_run(tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    change(record)
    (run / "run.json").write_text(json.dumps(record))
    before = snapshot(run)
    assert main([*RERUN, "--output-dir", str(run)]) == 2
    one_line_error(capsys, "run.json: ", message)
    assert snapshot(run) == before


@independent
@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "metrics.json").unlink(), "holds model.keras but no metrics.json"),
    (lambda run: (run / "model.keras").unlink(), "metrics.json reports a finished run but model.keras is missing"),
    (lambda run: (run / "history.csv").unlink(), "no history.csv but 2 epoch(s) trained"),
    (lambda run: (run / "history.csv").write_text("epoch,loss\n1,1\n1,2\n"), "field `epoch` must be 2"),
    (lambda run: (run / "metrics.json").write_text('{"epochs": "2"}'), "metrics.json: field(s) model"),
    (lambda run: (run / "backup").mkdir() or (run / "backup" / "training_metadata.json").write_text("{"),
     "training_metadata.json: not a readable checkpoint record"),
])
def test_a_partial_or_inconsistent_run_says_what_is_wrong_and_what_to_do(tmp_path, capsys, damage, message):
    run = fake_run(tmp_path / "run")
    damage(run)
    before = snapshot(run)
    assert main([*RERUN, "--output-dir", str(run), "--resume", "--epochs", "3"]) == 2
    one_line_error(capsys, message)
    assert snapshot(run) == before


@independent
def test_tuning_state_is_validated_before_keras_tuner_reloads_it(tmp_path):
    from keras_modern_cnn.tuning._compat import check_state_files

    project = tmp_path / "p"
    (project / "trial_0").mkdir(parents=True)
    (project / "tuner0.json").write_text("{}")
    with pytest.raises(ValueError, match="oracle.json: the search .* lacks this file"):
        check_state_files(str(project), str(project / "tuner0.json"))
    (project / "oracle.json").write_text('{"ongoing_trials": {}}')
    with pytest.raises(ValueError, match="oracle.json: field `hyperparameters` is missing"):
        check_state_files(str(project), str(project / "tuner0.json"))


# --------------------------------------------------------------------------- one reading of data

def write_image(path, kind):
    from PIL import Image

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (21, 17, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = {
        "png16": lambda: Image.fromarray(rng.integers(0, 65536, (21, 17), dtype=np.uint16)),
        "rgba": lambda: Image.fromarray(rgb).convert("RGBA"),
        "grey_alpha": lambda: Image.fromarray(rgb).convert("LA"),
        "palette": lambda: Image.fromarray(rgb).convert("P"),
        "cmyk": lambda: Image.fromarray(rgb).convert("CMYK"),
        "grey": lambda: Image.fromarray(rgb[..., 0]),
    }
    (images.get(kind) or (lambda: Image.fromarray(rgb)))().save(path)
    return path


FORMATS = [("png16", "a.png"), ("rgba", "a.png"), ("grey_alpha", "a.png"), ("palette", "a.png"),
           ("rgb", "a.jpg"), ("cmyk", "a.jpeg"), ("rgb", "a.gif"), ("rgb", "a.bmp"),
           ("grey", "a.bmp"), ("rgb", "a.webp")]


@independent
@pytest.mark.parametrize("kind, name", FORMATS)
def test_training_and_predict_read_every_accepted_image_to_the_same_model_input(tmp_path, kind, name):
    from keras_modern_cnn.data import make_pipeline
    from keras_modern_cnn.data.images import check_image_file
    from keras_modern_cnn.data.sources import _decoded_images
    from keras_modern_cnn.inference import load_image

    path = str(write_image(tmp_path / name, kind))
    assert check_image_file(path) is None
    trained = make_pipeline(_decoded_images([path], [0], 24, 3), image_size=24, batch_size=1, training=False)
    images = np.asarray(next(iter(trained))[0][0])
    predicted, original = load_image(path, 24, 3, "scale")
    np.testing.assert_array_equal(images, predicted)
    assert original.shape[:2] == (21, 17) and images.max() <= 1.0
    if kind == "png16":  # 16-bit precision kept (value / 65535), not clipped to 255
        from PIL import Image

        raw = np.asarray(Image.open(path), np.float64)
        decoded = np.asarray(__import__("keras_modern_cnn.data.images", fromlist=["x"]).read_image(path, 1))
        np.testing.assert_allclose(decoded[..., 0], raw / 257, rtol=1e-6)


def _bad_images(folder):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "tiff.jpg", format="TIFF")
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).convert("1").save(folder / "bits.bmp")
    Image.fromarray(np.arange(192, dtype=np.uint8).reshape(8, 8, 3)).convert("P").save(folder / "palette.bmp")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    with open(folder / "bomb.png", "wb") as handle:  # 100 MP announced in a 100-byte file
        import struct
        import zlib

        def chunk(kind, body):
            return (struct.pack(">I", len(body)) + kind + body
                    + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

        header = struct.pack(">IIBBBBB", 10000, 10000, 8, 0, 0, 0, 0)
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 10001)) + chunk(b"IEND", b""))
    (folder / "scan.tiff").write_bytes(b"II*\x00")
    return {"tiff.jpg": "a TIFF image named .jpg", "bits.bmp": "a 1-bit BMP",
            "palette.bmp": "a palette BMP", "empty.png": "an empty file",
            "text.png": "not a readable image", "bomb.png": "more than the 89,478,485",
            "scan.tiff": "a .tiff file, a format kmc does not read"}


@independent
def test_unreadable_bomb_sized_or_misnamed_images_are_caught_up_front_by_name(tmp_path, capsys):
    from keras_modern_cnn.data import load_data
    from keras_modern_cnn.data.images import check_image_file, unsupported_reason

    reasons = _bad_images(tmp_path / "bad")
    for name, reason in reasons.items():
        found = unsupported_reason(name) if name.endswith(".tiff") else check_image_file(str(tmp_path / "bad" / name))
        assert reason in found, (name, found)
    # In a dataset: one line naming the first file and the count, before any training.
    folder = tmp_path / "data"
    for label in ("a", "b"):
        for index in range(3):
            write_image(folder / label / f"{index}.png", "rgb")
    shutil.copy(tmp_path / "bad" / "tiff.jpg", folder / "b")
    with pytest.raises(ValueError, match=r"1 image file\(s\) cannot be read: .*b/tiff.jpg is a TIFF"):
        load_data(str(folder), image_size=8)
    assert load_data(str(folder), image_size=8, skip_unreadable=True).skipped_files == 1
    # kmc predict: the same check, the same line.
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    assert main(["predict", str(tmp_path / "m.keras"), str(tmp_path / "bad" / "bits.bmp")]) == 2
    one_line_error(capsys, "bits.bmp is a 1-bit BMP")
    assert main(["predict", str(tmp_path / "m.keras"), str(tmp_path / "bad")]) == 2
    one_line_error(capsys, "scan.tiff is a .tiff file")


@independent
def test_hidden_files_and_folders_are_never_classes_or_images(tmp_path, capsys):
    from keras_modern_cnn.data import load_data
    from keras_modern_cnn.inference import image_files

    folder = tmp_path / "data"
    for label in ("cat", "dog"):
        for index in range(5):
            write_image(folder / label / f"{index}.webp", "rgb")
        (folder / label / ".DS_Store").write_bytes(b"\0")
        (folder / label / "._0.webp").write_bytes(b"AppleDouble")
    write_image(folder / ".ipynb_checkpoints" / "x.png", "rgb")
    write_image(folder / "__MACOSX" / "cat" / "y.png", "rgb")
    (folder / "cat" / "notes.txt").write_text("labels were checked")
    data = load_data(str(folder), image_size=8)
    assert data.class_names == ("cat", "dog") and data.num_train + data.num_test == 10
    assert any("ignored 1 file(s) that are not images (cat/notes.txt)" in n for n in data.notices)
    assert [os.path.basename(p) for p in image_files([str(folder / "cat")])] == [f"{i}.webp" for i in range(5)]


@independent
def test_npz_value_ranges_are_detected_and_read_to_the_same_inputs(tmp_path):
    from keras_modern_cnn.data import load_data, make_pipeline

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8)
    y = np.arange(20) % 2
    inputs = {}
    for name, images, scale in [("uint8", x, 255), ("float01", x / 255.0, 1), ("float255", x.astype("float32"), 255),
                                ("uint16", x.astype("uint16") * 257, 65535)]:
        np.savez(tmp_path / f"{name}.npz", x_train=images, y_train=y, x_test=images, y_test=y)
        data = load_data(str(tmp_path / f"{name}.npz"))
        assert data.pixel_scale == scale
        pipeline = make_pipeline(data.test, image_size=8, batch_size=20, training=False,
                                 pixel_scale=data.pixel_scale)
        inputs[name] = np.asarray(next(iter(pipeline))[0])
    assert any("in [0, 1] already: used as they are" in n for n in load_data(str(tmp_path / "float01.npz")).notices)
    for name in ("float01", "float255", "uint16"):
        np.testing.assert_allclose(inputs[name], inputs["uint8"], atol=1e-6)
    np.savez(tmp_path / "standardised.npz", x_train=x / 127.5 - 1, y_train=y, x_test=x, y_test=y)
    with pytest.raises(ValueError, match=r"hold values in \[-1, .*kmc reads pixels in \[0, 1\]"):
        load_data(str(tmp_path / "standardised.npz"))


@independent
def test_classes_are_matched_by_name_between_a_run_and_the_dataset_it_is_evaluated_on(tmp_path):
    from keras_modern_cnn.data.checks import class_mapping
    from keras_modern_cnn.inference import evaluation_data

    model_classes = ["circle", "square", "triangle", "star"]
    assert class_mapping(model_classes, model_classes, "d") == (None, None)
    assert class_mapping(model_classes, ["square", "star"], "d")[0] == [1, 3]
    assert "names no classes" in class_mapping(model_classes, ["0", "1"], "d")[1]
    with pytest.raises(ValueError, match="classes the model was not trained on .zebra."):
        class_mapping(model_classes, ["square", "zebra"], "d")
    # A folder of two of the model's classes: labels renumbered to the model's indices.
    folder = tmp_path / "subset"
    for label in ("star", "square"):
        for index in range(5):
            write_image(folder / label / f"{index}.png", "rgb")
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(4)])
    notices = []
    data = evaluation_data(model, None, {"class_names": model_classes}, dataset=str(folder),
                           notice=notices.append)
    labels = {int(label) for _, label in data.test.concatenate(data.train)}
    assert labels == {1, 3} and data.class_names == tuple(model_classes)
    assert notices == ["classes matched by name: the dataset's 2 are 2 of the model's 4"]
    # A grey model reads the folder's files grey, as `kmc predict` reads one of them.
    grey = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    data = evaluation_data(grey, None, {"class_names": model_classes}, dataset=str(folder))
    from keras_modern_cnn.inference import load_image

    read_alone = [load_image(str(path), 8, 1, "none")[0] for path in sorted(folder.glob("*/*.png"))]
    assert data.channels == 1
    for image, _ in data.test.concatenate(data.train):
        assert any(np.allclose(image, alone, atol=1e-4) for alone in read_alone)


# ---------------------------------------------------------------------------- signals and disks

@independent
def test_a_library_s_own_out_of_space_failure_is_the_same_one_line(tmp_path, monkeypatch, capsys):
    """TensorBoard's event writer fails with its own error: kmc names the path and the space."""
    from keras_modern_cnn import training

    events = tmp_path / "run" / "logs" / "validation" / "events.out.tfevents"

    def full(*args, **kwargs):
        raise RuntimeError(f"{{function_node CreateSummaryFileWriter}} {events}; No space left on "
                           f"device Failed to flush 1 events to {events}")

    monkeypatch.setattr(training, "train", full)
    assert main(["train", "bn_lenet", "--output-dir", str(tmp_path / "run")]) == 2
    one_line_error(capsys, f"No space left to write {events} (", "free on its device")
    assert files.disk_full_error(RuntimeError("something else")) is None


@independent
def test_a_full_disk_is_one_line_naming_the_path_and_the_free_space_and_the_old_file_survives(tmp_path, monkeypatch, capsys):
    target = tmp_path / "p.csv"
    target.write_text("old\n")

    def full(temporary):
        with open(temporary, "w") as handle:
            handle.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(files.DiskFullError, match=r"No space left to write .*p.csv \(.* free on its device\)"):
        files.atomic_write(target, full)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]
    with pytest.raises(files.DiskFullError, match="it needs about 1.0 GB"):
        monkeypatch.setattr(files, "free_bytes", lambda path: 5000)
        files.atomic_write(target, full, expected_bytes=10**9)  # checked before writing
    assert files.is_out_of_space(RuntimeError("Unable to synchronously create file (errno = 28)"))

    # Through the CLI: `kmc predict --output` on a full disk.
    monkeypatch.undo()
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    image = str(write_image(tmp_path / "a.png", "rgb"))

    def no_space(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    assert main(["predict", str(tmp_path / "m.keras"), image, "--output", str(target), "--overwrite"]) == 2
    one_line_error(capsys, f"No space left to write {target} (", "free on its device")
    assert target.read_text() == "old\n" and not (tmp_path / "p.tmp.csv").exists()


@pytest.mark.slow  # real kmc processes, stopped and resumed
# On every backend: the checkpoint goes through `files.atomic_write` whatever writes the weights.
def test_a_full_disk_during_the_checkpoint_stops_training_in_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["train", "bn_lenet", "--epochs", "1", "--width-ratio", "0.25", "--train-examples", "64",
            "--test-examples", "32", "--batch-size", "32", "--quiet", "--output-dir", str(out)]
    monkeypatch.setattr(files, "free_bytes", lambda path: 10_000)  # h5py is never reached
    assert main(argv) == 2
    one_line_error(capsys, f"No space left to write {out / 'backup' / 'latest.weights.h5'} (10.0 kB free")
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    monkeypatch.undo()
    assert main(argv) == 0  # the same command, with room: the run starts over its epoch


KILL_RUN = ["train", "bn_lenet", "--epochs", "2", "--train-examples", "64", "--test-examples", "32",
            "--batch-size", "32", "--width-ratio", "0.25", "--quiet"]


def start_blocked(command, tmp_path, point):
    marker = tmp_path / f"blocked-{point}"
    # As a user's shell: no TF_CPP_MIN_LOG_LEVEL (importing Keras here set one, which the
    # command would honour by showing TensorFlow's start-up lines).
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(KMC_TEST_BLOCK_AT=point, KMC_TEST_MARKER=str(marker))
    process = subprocess.Popen([sys.executable, "-m", "keras_modern_cnn.cli", *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"never reached {point}: {process.communicate()[1][-2000:]}")
        time.sleep(0.05)
    return process


@pytest.mark.slow  # real kmc processes, stopped and resumed
@independent  # the signal reaches Python in a callback, whichever backend runs the step
def test_ctrl_c_mid_epoch_is_one_line_and_exit_130_the_run_locked_meanwhile_and_resumable(tmp_path, capsys):
    out = tmp_path / "run"
    command = [*KILL_RUN, "--output-dir", str(out)]
    first = start_blocked(command, tmp_path, "mid-epoch")
    try:
        assert main(command) == 2  # a second writer while the first runs: refused, named
        one_line_error(capsys, "is being written by another kmc process", f"pid {first.pid} on")
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130
    assert err.strip().splitlines() == [
        f"kmc train: interrupted (Ctrl-C) at epoch 2 of 2 (1 finished in {out}); rerun the same "
        f"command to resume"]
    assert main([arg for arg in command if arg != "--quiet"]) == 0
    assert "resuming from epoch 2 of 2" in capsys.readouterr().out
    assert [row["epoch"] for row in rundir.read_history(out / "history.csv")] == [1, 2]


@pytest.mark.slow  # real kmc processes, stopped and resumed
@independent
def test_sigterm_during_the_final_save_is_exit_143_and_the_rerun_finishes(tmp_path, capsys):
    out = tmp_path / "run"
    command = [*KILL_RUN, "--output-dir", str(out)]
    first = start_blocked(command, tmp_path, "model-save")
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 143 and len(err.strip().splitlines()) == 1
    assert "interrupted (SIGTERM)" in err and "rerun the same command to resume" in err
    assert not (out / "metrics.json").exists() and not list(out.glob("*.tmp*"))
    assert main(command) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.slow  # real kmc processes, stopped and resumed
@independent
def test_ctrl_c_stops_a_search_and_the_resumed_search_reruns_the_interrupted_trial(tmp_path, capsys):
    command = ["tune", "lenet", "--image-size", "16", "--train-examples", "64", "--test-examples", "32",
               "--batch-size", "32", "--epochs", "2", "--max-trials", "2", "--quiet",
               "--set", "width_ratio=0.25", "--output-dir", str(tmp_path)]
    first = start_blocked(command, tmp_path, "mid-epoch")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert err.strip().splitlines() == [
        f"kmc tune: interrupted (Ctrl-C) during trial 0 in {tmp_path / 'lenet'}; rerun the same "
        f"command to resume (the trial runs again)"]
    project = tmp_path / "lenet"
    assert json.loads((project / "trial_0" / "trial.json").read_text())["status"] == "RUNNING"
    assert main(command) == 0
    statuses = [json.loads((project / f"trial_{i}" / "trial.json").read_text())["status"] for i in (0, 1)]
    assert statuses == ["COMPLETED", "COMPLETED"]

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import reverse_digits_pairs, write_tsv

from training.__main__ import RESUMABLE, build_parser, main
from training.config import TrainConfig
from training.decoding import DecodeSettings

ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_module_help_lists_the_verbs():
    proc = subprocess.run(
        [sys.executable, "-m", "training", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert all(v in proc.stdout for v in ("train", "evaluate", "export"))


@pytest.mark.parametrize("verb", ["train", "evaluate", "export", "split", "probes", "push"])
def test_every_option_has_a_help_text(verb):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[verb]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help and len(action.help) > 10, f"{verb} {action.option_strings or action.dest}"


def test_train_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--label-smoothing" in out and "(default: 0.1)" in out and "--resume" in out


def test_missing_training_file_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_main(
        capsys, "train", "--train", str(tmp_path / "nope.tsv"), "--run-dir", str(tmp_path / "r")
    )
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'nope.tsv'}: no such file"


def test_empty_corpus_is_a_one_line_error(capsys, tmp_path):
    (tmp_path / "empty.tsv").write_text("no tab\n\n")
    code, _, err = run_main(
        capsys, "train", "--train", str(tmp_path / "empty.tsv"), "--run-dir", str(tmp_path / "r")
    )
    assert code == 2
    assert "no usable English<TAB>Chinese pairs (1 malformed lines)" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--dropout", "1.5", "must be in [0, 1)"),
        ("--epochs", "0", "must be a positive integer"),
        ("--heads", "x", "invalid positive_int value"),
    ],
)
def test_bad_option_values_are_rejected(capsys, tmp_path, option, value, message):
    with pytest.raises(SystemExit) as e:
        main(["train", "--train", "t.tsv", "--run-dir", str(tmp_path), option, value])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_heads_must_divide_width(capsys, tmp_path):
    write_tsv(tmp_path / "t.tsv", reverse_digits_pairs(10, 0))
    code, _, err = run_main(
        capsys,
        "train",
        "--train",
        str(tmp_path / "t.tsv"),
        "--run-dir",
        str(tmp_path / "r"),
        "--d-model",
        "30",
        "--heads",
        "4",
    )
    assert code == 2 and "not divisible" in err


def test_evaluate_and_export_cli(capsys, toy_run, tmp_path, monkeypatch):
    cfg, _ = toy_run
    weights = tmp_path / "w"
    code, out, _ = run_main(
        capsys,
        "export",
        cfg.run_dir,
        str(weights),
        "--checkpoint",
        "last",
        "--dev",
        cfg.dev_path,
        "--beam",
        "2",
    )
    assert code == 0 and f"exported to {weights}" in out
    hyps = tmp_path / "hyps.txt"
    code, out, _ = run_main(
        capsys, "evaluate", str(weights), "--data", cfg.dev_path, "--beam", "3", "--output", str(hyps)
    )
    assert code == 0
    assert "beam 3" in out and "tok:zh" in out and "chrF" in out
    lines = hyps.read_text().splitlines()
    assert len(lines) == 100 and all(line.isdigit() for line in lines)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")  # without --output nothing is written, here or beside the data
    before = {p for p in tmp_path.rglob("*")}
    code, out, _ = run_main(capsys, "evaluate", str(weights), "--data", cfg.dev_path, "--beam", "1")
    assert code == 0 and "written" not in out and {p for p in tmp_path.rglob("*")} == before
    code, _, err = run_main(capsys, "evaluate", str(tmp_path / "nowhere"), "--data", cfg.dev_path)
    assert code == 2 and "weights folder not found" in err


def test_resume_refuses_a_changed_model_shape(capsys, toy_run):
    cfg, _ = toy_run
    code, _, err = run_main(
        capsys, "train", "--train", cfg.train_path, "--run-dir", cfg.run_dir, "--resume", "--d-model", "128"
    )
    assert code == 2 and "d_model differ" in err


def test_resume_after_max_steps_continues_to_the_end(capsys, tmp_path):
    write_tsv(tmp_path / "t.tsv", reverse_digits_pairs(300, 0))
    common = [
        "train",
        "--train",
        str(tmp_path / "t.tsv"),
        "--run-dir",
        str(tmp_path / "r"),
        "--d-model",
        "16",
        "--heads",
        "2",
        "--d-ff",
        "32",
        "--encoder-layers",
        "1",
        "--decoder-layers",
        "1",
        "--max-len",
        "16",
        "--max-tokens",
        "200",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert run_main(capsys, *common, "--max-steps", "3")[0] == 0
    code, out, _ = run_main(capsys, *common[:5], "--resume", "--epochs", "3", "--no-progress")
    assert code == 0 and "resumed from" in out
    import json

    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]  # --max-steps did not stick; the raised --epochs did
    saved = json.loads((tmp_path / "r" / "train_config.json").read_text())
    assert saved["epochs"] == 3 and saved["max_steps"] is None
    commands = (tmp_path / "r" / "command.txt").read_text().splitlines()  # both invocations, replayable
    assert (
        len(commands) == 2 and commands[0].endswith("--max-steps 3") and "--resume --epochs 3" in commands[1]
    )


def test_export_refuses_to_replace_a_folder_that_is_not_an_export(capsys, toy_run, tmp_path):
    cfg, _ = toy_run
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code, _, err = run_main(capsys, "export", cfg.run_dir, str(precious), "--checkpoint", "last")
    assert code == 2 and "not an earlier export" in err
    assert (precious / "notes.txt").read_text() == "keep me"
    code, _, err = run_main(capsys, "export", cfg.run_dir, cfg.run_dir, "--checkpoint", "last")
    assert code == 2 and "refusing to replace" in err
    assert (Path(cfg.run_dir) / "last.safetensors").is_file()


def test_a_damaged_checkpoint_on_resume_is_a_one_line_error(capsys, toy_run, tmp_path):
    cfg, _ = toy_run
    run = shutil.copytree(cfg.run_dir, tmp_path / "run")
    saved = json.loads((run / "train_config.json").read_text())
    (run / "train_config.json").write_text(json.dumps({**saved, "run_dir": str(run)}))  # as if trained here
    (run / "last.safetensors").write_bytes(b"\x00" * 100)
    code, _, err = run_main(capsys, "train", "--train", cfg.train_path, "--run-dir", str(run), "--resume")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {run / 'last.safetensors'}: not a readable training checkpoint")


def test_an_unknown_key_in_train_config_is_a_one_line_error_naming_it(capsys, toy_run, tmp_path):
    cfg, _ = toy_run
    run = shutil.copytree(cfg.run_dir, tmp_path / "run")
    saved = json.loads((run / "train_config.json").read_text())
    (run / "train_config.json").write_text(json.dumps({**saved, "d_modle": 64}))  # a hand edit with a typo
    code, _, err = run_main(capsys, "train", "--train", cfg.train_path, "--run-dir", str(run), "--resume")
    assert code == 2
    assert err == f"error: {run / 'train_config.json'}: unknown TrainConfig field 'd_modle'\n"


def test_export_needs_enough_epoch_checkpoints_to_average_one_line(capsys, toy_run, tmp_path):
    cfg, _ = toy_run
    code, _, err = run_main(capsys, "export", cfg.run_dir, str(tmp_path / "w"), "--average", "50")
    assert code == 2 and err.count("\n") == 1 and "--average 50 needs 50 epoch checkpoints" in err


def test_a_bug_inside_a_command_keeps_its_traceback(monkeypatch, tmp_path):
    """A ValueError that is not a user error (here: raised by the training loop itself) must not
    become `error: …` with exit 2: it propagates, and `python -m training` shows the traceback."""
    write_tsv(tmp_path / "t.tsv", reverse_digits_pairs(10, 0))
    argv = ["train", "--train", str(tmp_path / "t.tsv"), "--run-dir", str(tmp_path / "r")]

    def bug(*args, **kwargs):
        raise ValueError("bug in the loop")

    monkeypatch.setattr("training.train.train", bug)
    with pytest.raises(ValueError, match="bug in the loop"):
        main(argv)

    script = (
        "import sys, training.train as t\n"
        "def bug(*a, **k): raise TypeError('bug in the loop')\n"
        "t.train = bug\n"
        "from training.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.rstrip().endswith("TypeError: bug in the loop") and "error: " not in proc.stderr


def test_resume_help_names_exactly_the_resumable_flags():
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    flag = {a.dest: a.option_strings[0] for a in sub._actions if a.option_strings}
    text = " ".join(next(a.help for a in sub._actions if a.dest == "resume").split())
    named = set(re.findall(r"--[a-z-]+", text.split("may change")[0]))
    assert named == {flag[dest] for dest in RESUMABLE}
    assert "--d-model" not in named and "--no-progress" in named


def test_every_training_field_has_one_flag():
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    dests = [a.dest for a in sub._actions if a.option_strings and a.dest not in ("help", "resume")]
    assert len(dests) == len(set(dests))
    # betas has no flag: the recipe has never varied it
    assert set(dests) == {f.name for f in dataclasses.fields(TrainConfig)} - {"betas"}


def test_export_takes_its_decoding_defaults_from_decode_settings(capsys, toy_run, tmp_path, monkeypatch):
    @dataclasses.dataclass
    class Other(DecodeSettings):  # different defaults: the export must follow them, not copies of its own
        beam: int = 3
        length_penalty: float = 0.25

    monkeypatch.setattr("training.decoding.DecodeSettings", Other)
    cfg, _ = toy_run
    assert run_main(capsys, "export", cfg.run_dir, str(tmp_path / "w"), "--checkpoint", "last")[0] == 0
    decoding = json.loads((tmp_path / "w" / "config.json").read_text())["decoding"]
    assert decoding == dataclasses.asdict(Other())
    assert (
        run_main(
            capsys,
            "export",
            cfg.run_dir,
            str(tmp_path / "w"),
            "--checkpoint",
            "last",
            "--length-penalty",
            "0",
        )[0]
        == 0
    )
    decoding = json.loads((tmp_path / "w" / "config.json").read_text())["decoding"]
    assert (decoding["beam"], decoding["length_penalty"]) == (3, 0.0)


def test_export_before_the_first_evaluation_says_so(capsys, toy_run, tmp_path):
    import shutil

    cfg, _ = toy_run
    run = tmp_path / "run"
    shutil.copytree(cfg.run_dir, run)
    (run / "best.safetensors").unlink()  # as if stopped during epoch 1, before dev was scored
    code, _, err = run_main(capsys, "export", str(run), str(tmp_path / "w"))
    assert code == 2 and "stopped before its first evaluation" in err and "--checkpoint last" in err


def test_train_with_no_recipe_options_runs_the_default_recipe(monkeypatch, tmp_path):
    # The CLI must build the same TrainConfig as the dataclass defaults (it once read a missing
    # --subwords as an old run's 0: a word model, not the shipped recipe).
    import training.train

    seen = {}
    summary = {"steps": 0, "seconds": 0.0, "best_bleu": -1.0}
    monkeypatch.setattr(training.train, "train", lambda cfg, resume: seen.setdefault("cfg", cfg) and summary)
    train = write_tsv(tmp_path / "t.tsv", reverse_digits_pairs(5, seed=0))
    main(["train", "--train", str(train), "--run-dir", str(tmp_path / "run")])
    assert seen["cfg"] == TrainConfig(train_path=str(train), dev_path=None, run_dir=str(tmp_path / "run"))
    assert seen["cfg"].subwords == 4000

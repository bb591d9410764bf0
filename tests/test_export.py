import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from training.export import export, load_run
from training.translator import WeightsError, load_weights_dir


@pytest.fixture(scope="module")
def exported(toy_run, tmp_path_factory):
    cfg, _ = toy_run
    out = tmp_path_factory.mktemp("export") / "weights"
    path, scores = export(
        cfg.run_dir,
        out,
        checkpoint="last",
        dtype="float32",
        dev_path=cfg.dev_path,
        command="python -m training train ...",
    )
    return cfg, path, scores


def logits_of(model, text_ids):
    src = torch.tensor([text_ids])
    tgt = torch.tensor([[2, 5, 6, 7]])
    return model(src, tgt)[0]


def test_export_then_load_reproduces_the_logits_exactly(exported):
    cfg, path, _ = exported
    original, _, _ = load_run(cfg.run_dir, "last")
    loaded = load_weights_dir(path)
    ids = original.prepare("1 2 3").ids
    assert loaded.src_vocab.itos == original.src_vocab.itos
    assert loaded.tgt_vocab.itos == original.tgt_vocab.itos
    assert torch.equal(logits_of(original.model, ids), logits_of(loaded.model, ids))
    assert loaded.translate(["4 5 6"]) == original.translate(["4 5 6"]) == ["654"]


def test_float16_export_is_half_the_size_and_translates_the_same(exported, tmp_path):
    cfg, path32, _ = exported
    path16, _ = export(cfg.run_dir, tmp_path / "w16", checkpoint="last", dtype="float16")
    size = lambda p: (p / "model.safetensors").stat().st_size
    assert size(path16) < 0.6 * size(path32)
    assert all(t.dtype == torch.float16 for t in load_file(str(path16 / "model.safetensors")).values())
    loaded = load_weights_dir(path16)
    assert next(loaded.model.parameters()).dtype == torch.float32  # upcast at load
    texts = ["1 2 3", "9 8 7 6", "5 0"]
    assert loaded.translate(texts) == load_weights_dir(path32).translate(texts)


def test_exported_folder_has_config_vocab_and_model_card(exported):
    _, path, scores = exported
    assert sorted(p.name for p in path.iterdir()) == [
        "README.md",
        "config.json",
        "faithfulness.json",
        "head_stats.json",
        "model.safetensors",
        "training_log.json",
        "vocab_src.json",
        "vocab_tgt.json",
    ]
    config = json.loads((path / "config.json").read_text())
    assert {"model", "tokenizer", "decoding", "metrics"} <= set(config)
    assert config["metrics"]["dev_chrf"] == round(scores.chrf, 2)
    card = (path / "README.md").read_text()
    assert card.startswith("---\n") and "license: cc-by-2.0" in card
    assert "- en\n- zh" in card and "Tatoeba contributors" in card
    assert f"value: {round(scores.chrf, 2)}" in card
    assert "python -m training train ..." in card


def test_checkpoint_averaging(toy_run, tmp_path):
    cfg, _ = toy_run
    translator, _, paths = load_run(cfg.run_dir, average=3)
    assert len(paths) == 3
    from training.checkpoint import model_state, read_checkpoint

    states = [model_state(read_checkpoint(p)[0]) for p in paths]
    expected = (
        states[0]["tgt_embed.weight"] + states[1]["tgt_embed.weight"] + states[2]["tgt_embed.weight"]
    ) / 3
    assert torch.allclose(translator.model.tgt_embed.weight, expected, atol=1e-7)
    with pytest.raises(ValueError, match="needs 50 epoch checkpoints"):
        load_run(cfg.run_dir, average=50)


def test_an_averaged_export_names_the_epochs_it_averaged(toy_run, tmp_path):
    from training.checkpoint import read_checkpoint

    cfg, _ = toy_run
    path, _ = export(cfg.run_dir, tmp_path / "avg", average=3, dtype="float32")
    log = json.loads((path / "training_log.json").read_text())
    _, _, paths = load_run(cfg.run_dir, average=3)
    assert log["averaged_epochs"] == [read_checkpoint(p)[1]["meta"]["epoch"] for p in paths]
    assert log["averaged_epochs"] == list(range(cfg.epochs - 2, cfg.epochs + 1))


def copy_weights(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_truncated_safetensors_is_a_clear_error(exported, tmp_path):
    _, path, _ = exported
    bad = copy_weights(path, tmp_path / "bad")
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="model.safetensors: unreadable or truncated"):
        load_weights_dir(bad)


def test_vocabulary_that_does_not_match_the_config_is_a_clear_error(exported, tmp_path):
    _, path, _ = exported
    bad = copy_weights(path, tmp_path / "bad")
    vocab = json.loads((bad / "vocab_tgt.json").read_text())
    vocab["tokens"].append("多")
    (bad / "vocab_tgt.json").write_text(json.dumps(vocab))
    with pytest.raises(WeightsError, match="vocab_tgt.json: .* different runs"):
        load_weights_dir(bad)


def test_config_that_does_not_match_the_tensors_is_a_clear_error(exported, tmp_path):
    _, path, _ = exported
    bad = copy_weights(path, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    config["model"]["d_ff"] *= 2
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="config and the weights do not belong together"):
        load_weights_dir(bad)
    config["model"]["n_decoder_layers"] += 1
    config["model"]["d_ff"] //= 2
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="tensors do not match config.json"):
        load_weights_dir(bad)


def test_missing_files_are_clear_errors(exported, tmp_path):
    _, path, _ = exported
    with pytest.raises(WeightsError, match="weights folder not found"):
        load_weights_dir(tmp_path / "nowhere")
    bad = copy_weights(path, tmp_path / "bad")
    (bad / "vocab_src.json").unlink()
    with pytest.raises(WeightsError, match="vocab_src.json"):
        load_weights_dir(bad)


def test_nan_weights_are_rejected(exported, tmp_path):
    _, path, _ = exported
    bad = copy_weights(path, tmp_path / "bad")
    state = load_file(str(bad / "model.safetensors"))
    state["output_bias"][0] = float("nan")
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(WeightsError, match="NaN"):
        load_weights_dir(bad)


@pytest.mark.parametrize(
    "field,value", [("max_len", 50_000_000), ("d_model", 10**6), ("n_encoder_layers", 10**4)]
)
def test_absurd_sizes_in_config_json_are_one_line_weights_errors(exported, tmp_path, field, value):
    _, path, _ = exported
    bad = copy_weights(path, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    config["model"][field] = value
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        WeightsError, match=f"config.json: bad 'model' section \\({field} is .*more than this project"
    ):
        load_weights_dir(bad)


def test_export_ships_the_training_log_and_the_dev_sets_head_statistics(exported, toy_run):
    cfg, path, _ = exported
    log = json.loads((path / "training_log.json").read_text())
    assert [h["epoch"] for h in log["history"]] == list(range(1, cfg.epochs + 1)) and log[
        "shipped_epoch"
    ] == cfg.epochs
    assert "averaged_epochs" not in log  # one checkpoint: the Model tab marks shipped_epoch
    assert all({"train_loss", "lr", "dev_bleu"} <= set(h) for h in log["history"])
    stats = json.loads((path / "head_stats.json").read_text())
    assert stats["data"] == "dev.tsv" and stats["sentences"] == 100
    assert len(stats["stats"]["encoder"]["entropy_bits"]) == cfg.n_encoder_layers


def test_the_model_card_names_every_file_of_the_folder(exported):
    _, path, _ = exported
    card = (path / "README.md").read_text()
    for f in path.iterdir():
        if f.name != "README.md":
            assert f"`{f.name}`" in card, f.name


def test_export_ships_the_dev_sets_faithfulness_and_the_loader_reads_it_once(exported, tmp_path, caplog):
    import shutil

    from explorer.loading import LoadedModel
    from training.data import read_tsv
    from training.faithfulness import METHODS, faithfulness, is_result

    cfg, path, _ = exported
    shipped = json.loads((path / "faithfulness.json").read_text())
    assert is_result(shipped) and set(shipped["methods"]) == set(METHODS)
    assert shipped["data"] == "dev.tsv" and shipped["pairs"] == shipped["sentences"] == 100  # under the cap
    # The figures of the shipped weights: the measurement run again on the exported folder.
    translator = load_weights_dir(path)
    again = faithfulness(translator, [en for en, _ in read_tsv(cfg.dev_path).pairs])
    for name, m in shipped["methods"].items():
        assert m["top1_drop"] == pytest.approx(again["methods"][name]["top1_drop"], abs=1e-6), name
    assert LoadedModel(translator, "x").faithfulness == shipped
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "faithfulness.json").write_text('{"methods": []}')
    with caplog.at_level("WARNING", logger="explorer"):
        loaded = LoadedModel(load_weights_dir(broken), "y")
    assert loaded.faithfulness is None and loaded.head_stats is not None  # only what it would show is lost
    assert "faithfulness.json not used" in caplog.text

"""File names of a weights folder and of a run directory, in one place so that
training, export, the loader and the Hub code agree on them."""

# A weights folder (what `python -m training export` writes and the Hub repo holds).
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SRC_VOCAB_FILE = "vocab_src.json"
TGT_VOCAB_FILE = "vocab_tgt.json"
SUBWORDS_FILE = "subwords_src.model"  # the English SentencePiece model; only in subword models
HEAD_STATS_FILE = "head_stats.json"  # what each head does, averaged over the dev set (export --dev)
TRAINING_LOG_FILE = "training_log.json"  # per-epoch loss, learning rate and dev scores (the Model tab)
FAITHFULNESS_FILE = (
    "faithfulness.json"  # how far each contribution view can be trusted, on dev (export --dev)
)
CARD_FILE = "README.md"
WEIGHT_FILES = (WEIGHTS_FILE, CONFIG_FILE, SRC_VOCAB_FILE, TGT_VOCAB_FILE)  # every weights folder has these
# the app works without them
OPTIONAL_WEIGHT_FILES = (SUBWORDS_FILE, HEAD_STATS_FILE, TRAINING_LOG_FILE, FAITHFULNESS_FILE)

# A training run directory (vocabulary and subword files use the names above).
TRAIN_CONFIG_FILE = "train_config.json"
LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"
LOG_FILE = "log.jsonl"
COMMAND_FILE = "command.txt"

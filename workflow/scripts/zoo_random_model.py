"""Build one untrained model of a real transformers VLM class on a real tokenizer and save it."""

from vrp.adapters import get_adapter_class
from vrp.io import write_json
from vrp.runlog import setup_job_logging

log = setup_job_logging(snakemake.log[0], threads=snakemake.threads)
params = snakemake.params
adapter_class = get_adapter_class(params.family)
tokenizer = adapter_class.load_release_tokenizer(snakemake.input.tokenizer)
adapter = adapter_class.build_tiny(tokenizer, dict(params.tiny), seed=params.seed)
adapter.save(snakemake.output.checkpoint)
report = {
    "family": params.family,
    "parameters": sum(p.numel() for p in adapter.model.parameters()),
    "vocabulary": len(adapter.tokenizer),
    "image_token_id": adapter.image_token_id,
    "special_tokens": {
        role: [
            getattr(adapter.tokenizer, f"{role}_token"),
            getattr(adapter.tokenizer, f"{role}_token_id"),
        ]
        for role in ("bos", "eos", "pad", "unk")
    },
}
write_json(report, snakemake.output.report)
log.info("%s: random init, %s; saved to %s", params.family, report, snakemake.output.checkpoint)

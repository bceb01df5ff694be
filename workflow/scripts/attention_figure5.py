"""Figure 5: the case study chosen by rule, its attention heatmap on the pixels and its logit lens."""

import numpy as np
import pandas as pd

from vrp.analysis.attention_tables import select_case_study
from vrp.analysis.figures_attention import figure_case_study, heatmap_on_pixels
from vrp.analysis.plotting import save_figure
from vrp.benchmark.images import decode_images
from vrp.benchmark.schema import read_questions
from vrp.io import write_json
from vrp.models import load_model_from_spec
from vrp.per_model import read_labelled
from vrp.runlog import setup_job_logging
from vrp.shards import load_array

log = setup_job_logging(snakemake.log[0])
params = snakemake.params
labels = [tuple(label) for label in params.labels]
stats = read_labelled(labels, snakemake.input.stats, names=("model", "family", "dataset"))
case = select_case_study(stats, entropy_quantile=params.entropy_quantile)
log.info("case study: %s", case)

index = [(m, d) for m, _, d in labels].index((case["model"], case["dataset"]))
family = labels[index][1]
row = stats[(stats["model"] == case["model"]) & (stats["dataset"] == case["dataset"])].iloc[
    case["row"]
]
questions = read_questions(snakemake.input.questions[params.datasets.index(case["dataset"])])
question = questions[questions["question_id"] == case["question_id"]].iloc[0]
image = decode_images(pd.Series([question["image"]]))[0]

# exact patch -> pixel geometry from the model's own processor (loaded on CPU, no forward pass)
adapter = load_model_from_spec({**params.models[case["model"]], "device": "cpu"})
rows, cols = int(row["grid_rows"]), int(row["grid_cols"])
boxes = adapter.cell_boxes(image.size, (rows, cols))
grid_map = np.load(snakemake.input.maps[index])[case["row"], : rows * cols].reshape(rows, cols)
heat = heatmap_on_pixels(grid_map, boxes, image.size)

manifest = snakemake.input.manifests[index]
margin = np.asarray(load_array(manifest, "lens_margin")[case["row"]])
margin_blank = np.asarray(load_array(manifest, "lens_margin_blank")[case["row"]])
info = {
    **case,
    "family": family,
    "question": question["question"],
    "answer": row["answer"],
    "prediction": row["prediction"],
    "confidence": float(row["confidence"]),
    "hs": float(row["hs"]),
    "hs_label": "(/ log S)" if params.entropy_normalized else "nats",
    "ck": int(row["ck"]),
    "ck_method": params.ck_method,
    "grid": [rows, cols],
    "layers": [int(row["layer_first"]), int(row["layer_last"])],
    "lens_margin": margin.tolist(),
    "lens_margin_blank": margin_blank.tolist(),
}
save_figure(
    figure_case_study(image, heat, info, margin, margin_blank),
    snakemake.output.pdf,
    snakemake.output.png,
)
write_json(info, snakemake.output.case)

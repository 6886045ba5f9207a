"""``mtl explain --input FILE.csv [--model URI]``: SHAP per task of a registered model, logged to MLflow."""

from __future__ import annotations

from omegaconf import OmegaConf

from mtl.commands.predict import load_model, read_input
from mtl.explain import log_explanation

MAX_ROWS = 200  # permutation SHAP costs ~2 x (varying columns) model calls per row


def run(args) -> None:
    from mtl.tracking import MlflowTracker

    frame = read_input(args.input)
    packaged = load_model(args.model, args.tracking_uri).unwrap_python_model().ensemble
    frame = frame.sample(n=min(MAX_ROWS, len(frame)), random_state=0) if len(frame) > MAX_ROWS else frame
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] or packaged.tasks
    features, inputs = packaged.model_inputs(frame, tasks, args.input)
    explanation = packaged.explain(features, inputs)
    cfg = OmegaConf.create({"model": args.model, "input": args.input, "rows": len(frame),
                            "tracking": {"uri": args.tracking_uri, "experiment": args.experiment}})
    tracker = MlflowTracker(cfg)
    units = {t: s["unit"] for t, s in packaged.spec["tasks"].items()}
    with tracker.parent_run("explain") as run:
        log_explanation(tracker, explanation, units, member_runs={})
    for task in tasks:
        top = explanation.importance(task).head(5)
        print(f"{task}: " + ", ".join(f"{name} {value:.3g} {units[task]}" for name, value in top.items()))
    print(f"SHAP plots and values logged to run {run.info.run_id} (experiment '{args.experiment}')")

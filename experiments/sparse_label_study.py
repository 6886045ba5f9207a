"""The flagship study: does multi-task learning help sparse labels?

On grouped outer splits of the shipped data (k folds x repeats; a composition is never on both
sides), it compares
  (a) the multi-task ensemble (hardness + pitting) with its tuned configuration,
  (b) the same network trained on each task alone, with that task's own tuned configuration,
  (c) random forest, extra trees, gradient boosting and a Gaussian process on the same features
      (shared features + the task's conditions; scalers and imputers fitted in the training fold);
then sweeps the fraction of one task's training labels that is kept (the other task complete),
for MTL and single-task; and adds yield strength as a third task to see whether hardness gains.

    python experiments/sparse_label_study.py                      # the full study (~30 min, 2 cores)
    python experiments/sparse_label_study.py outer.repeats=1 fraction_seeds=[0]   # quicker

Results: MLflow experiment ``sparse-label-study`` (tables and plots), and
``experiments/results/`` (markdown table, PNGs), which the README shows.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from mtl.config import CONF_DIR, validated
from mtl.data.dataset import MultiTaskDataset, load_dataset
from mtl.ensemble import train_ensemble
from mtl.metrics import task_scores
from mtl.tracking import MlflowTracker, Tracker

log = logging.getLogger("sparse_label_study")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def network_config(tasks: list[str], tuned: list[str], budget: DictConfig) -> DictConfig:
    """The project's training config for ``tasks`` with tuned hyperparameters and the study's budget."""
    task_overrides = [f"+task@tasks.{t}={t}" for t in tasks if t not in ("hardness", "pitting")]
    task_overrides += [f"~tasks.{t}" for t in ("hardness", "pitting") if t not in tasks]
    shared = [f"trainer.max_epochs={budget.max_epochs}", f"trainer.patience={budget.patience}",
              f"ensemble.folds={budget.members}", "trainer.log_every=0", "explain.enabled=false", "registry.enabled=false"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*task_overrides, *shared, *tuned])
    return validated(cfg)


def outer_splits(ds: MultiTaskDataset, folds: int, repeats: int, seed: int):
    """(split id, test compositions): grouped, stratified by label pattern (the Core splitter)."""
    from mtl.ensemble import member_splits

    for repeat, fold, _, test in member_splits(ds, folds, repeats, seed):
        yield f"r{repeat}f{fold}", set(ds.compositions[i] for i in test)


def split_rows(ds: MultiTaskDataset, test_compositions: set[str]) -> tuple[np.ndarray, np.ndarray]:
    test = np.array([c in test_compositions for c in ds.compositions])
    return np.flatnonzero(~test), np.flatnonzero(test)


def keep_fraction(ds: MultiTaskDataset, task: str, fraction: float, seed: int) -> MultiTaskDataset:
    """Hide all but ``fraction`` of ``task``'s labels, by composition group (repeats go together)."""
    if fraction >= 1:
        return ds
    t = ds.tasks.index(task)
    labelled = ds.task_rows(task)
    groups = np.unique(ds.groups[labelled])
    kept = np.random.default_rng(seed).choice(groups, size=max(1, round(fraction * len(groups))), replace=False)
    y = ds.y.copy()
    y[labelled[~np.isin(ds.groups[labelled], kept)], t] = np.nan
    out = ds.subset(np.arange(len(ds)))
    out.y = y
    return out.subset(np.flatnonzero(out.mask.any(axis=1)))


def network_scores(train: MultiTaskDataset, test: MultiTaskDataset, cfg: DictConfig) -> dict[str, float]:
    result = train_ensemble(train, cfg, Tracker())
    prediction = result.model.predict(test.features, test.inputs, mc_samples=0)
    return task_scores(test.y, prediction.mean, test.tasks)


def baseline_models(seed: int) -> dict:
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer

    def imputed(model):
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), model)

    return {
        "random forest": imputed(RandomForestRegressor(n_estimators=300, n_jobs=-1, random_state=seed)),
        "extra trees": imputed(ExtraTreesRegressor(n_estimators=300, n_jobs=-1, random_state=seed)),
        "gradient boosting": imputed(HistGradientBoostingRegressor(random_state=seed)),
        "gaussian process": make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            QuantileTransformer(n_quantiles=200, output_distribution="normal"),
            GaussianProcessRegressor(ConstantKernel() * RBF(length_scale=5.0) + WhiteKernel(), normalize_y=True,
                                     random_state=seed)),
    }


def baseline_scores(train: MultiTaskDataset, test: MultiTaskDataset, task: str, seed: int) -> dict[str, dict[str, float]]:
    """Each classical model fitted on ``task``'s labelled training rows (features + conditions)."""
    t = train.tasks.index(task)
    tr, te = train.task_rows(task), test.task_rows(task)

    def matrix(ds, rows):
        return np.hstack([ds.features[rows], ds.inputs[task][rows]])

    out = {}
    for name, model in baseline_models(seed).items():
        model.fit(matrix(train, tr), train.y[tr, t])
        predicted = model.predict(matrix(test, te))
        scores = task_scores(test.y[te, t:t + 1], predicted[:, None], [task])
        out[name] = {k: v for k, v in scores.items() if k.endswith(task)}
    return out


def rows_of(method: str, split: str, scores: dict[str, float], **extra) -> list[dict]:
    tasks = {k.removeprefix("r2_") for k in scores if k.startswith("r2_") and k != "r2_mean"}
    return [{"method": method, "split": split, "task": task, "r2": scores[f"r2_{task}"], "rmse": scores[f"rmse_{task}"],
             **extra} for task in sorted(tasks)]


def comparison(cfg: DictConfig, ds: MultiTaskDataset, ds3: MultiTaskDataset | None) -> pd.DataFrame:
    rows = []
    tuned = cfg.tuned
    for split, test_compositions in outer_splits(ds, cfg.outer.folds, cfg.outer.repeats, cfg.outer.seed):
        start = time.perf_counter()
        train_rows, test_rows = split_rows(ds, test_compositions)
        train, test = ds.subset(train_rows), ds.subset(test_rows)
        rows += rows_of("MTL (hardness + pitting)", split,
                        network_scores(train, test, network_config(ds.tasks, list(tuned.mtl), cfg.budget)))
        for task in ds.tasks:
            single = network_config([task], list(tuned[task]), cfg.budget)
            rows += rows_of("single-task network", split,
                            network_scores(train.select_tasks([task]), test.select_tasks([task]), single))
            for name, scores in baseline_scores(train, test, task, cfg.outer.seed).items():
                rows += rows_of(name, split, scores)
        if ds3 is not None:
            train3, test3 = (ds3.subset(r) for r in split_rows(ds3, test_compositions))
            scores = network_scores(train3, test3, network_config(ds3.tasks, list(tuned.mtl), cfg.budget))
            rows += rows_of("MTL + yield strength", split, scores)
        log.info("split %s done in %.0f s", split, time.perf_counter() - start)
    return pd.DataFrame(rows)


def fraction_sweep(cfg: DictConfig, ds: MultiTaskDataset) -> pd.DataFrame:
    """R² on held-out rows vs the fraction of one task's training labels kept (first outer split)."""
    split, test_compositions = next(outer_splits(ds, cfg.outer.folds, 1, cfg.outer.seed))
    train_rows, test_rows = split_rows(ds, test_compositions)
    train, test = ds.subset(train_rows), ds.subset(test_rows)
    rows = []
    for task in cfg.fraction_tasks:
        for fraction in cfg.fractions:
            for seed in cfg.fraction_seeds:
                sparse = keep_fraction(train, task, fraction, seed)
                extra = {"fraction": fraction, "seed": seed, "labels": len(sparse.task_rows(task))}
                mtl = network_scores(sparse, test, network_config(ds.tasks, list(cfg.tuned.mtl), cfg.budget))
                rows += [r for r in rows_of("MTL", split, mtl, **extra) if r["task"] == task]
                alone = network_scores(sparse.select_tasks([task]), test.select_tasks([task]),
                                       network_config([task], list(cfg.tuned[task]), cfg.budget))
                rows += rows_of("single-task", split, alone, **extra)
                log.info("fraction %.2f of %s (seed %d, %d labels): R² MTL %.3f, single-task %.3f", fraction, task, seed,
                         extra["labels"], mtl[f"r2_{task}"], alone[f"r2_{task}"])
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    grouped = results.groupby(["task", "method"], sort=False)
    table = grouped.agg(r2_mean=("r2", "mean"), r2_std=("r2", "std"), rmse_mean=("rmse", "mean"),
                        rmse_std=("rmse", "std"), splits=("r2", "size")).reset_index()
    return table.sort_values(["task", "r2_mean"], ascending=[True, False])


def markdown(table: pd.DataFrame, units: dict[str, str]) -> str:
    lines = ["| task | method | R² (mean ± std) | RMSE (mean ± std) | splits |", "|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r.task} | {r.method} | {r.r2_mean:.3f} ± {r.r2_std:.3f} | {r.rmse_mean:.0f} ± {r.rmse_std:.0f} "
                     f"{units.get(r.task, '')} | {r.splits} |")
    return "\n".join(lines)


def fraction_plot(sweep: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(sweep.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method, colour in (("MTL", "tab:red"), ("single-task", "tab:blue")):
            part = sweep[(sweep.task == task) & (sweep.method == method)].groupby("fraction").r2.agg(["mean", "std"])
            ax.errorbar(part.index * 100, part["mean"], yerr=part["std"].fillna(0), marker="o", capsize=3, color=colour,
                        label=method)
        ax.set(xscale="log", xlabel=f"{task} training labels kept (%)", ylabel=f"held-out R², {task}",
               title=f"{task}: the other task complete")
        ax.set_xticks([10, 25, 50, 100], ["10", "25", "50", "100"])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def comparison_plot(table: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(table.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = table[table.task == task].sort_values("r2_mean")
        ax.barh(part.method, part.r2_mean, xerr=part.r2_std.fillna(0), color="tab:grey", capsize=3)
        ax.set(xlabel="held-out R² (mean ± std over outer splits)", title=task)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def update_readme(text: str) -> None:
    """Replace the README's results section (between the study markers) with ``text``."""
    readme = HERE.parent / "README.md"
    start, end = "<!-- sparse-label-study:start -->", "<!-- sparse-label-study:end -->"
    content = readme.read_text()
    if start in content and end in content:
        before, rest = content.split(start, 1)
        content = before + start + "\n" + text + "\n" + end + rest.split(end, 1)[1]
        readme.write_text(content)


def study_config(overrides: list[str]) -> DictConfig:
    """``experiments/conf/sparse_label_study.yaml`` with command-line overrides (Hydra's compose API)."""
    with initialize_config_dir(str(HERE / "conf"), version_base="1.3"):
        return compose("sparse_label_study", overrides=overrides)


def main(cfg: DictConfig) -> None:
    base = network_config(["hardness", "pitting"], [], cfg.budget)
    ds = load_dataset(base)
    ds3 = load_dataset(network_config(["hardness", "pitting", "yield_strength"], [], cfg.budget)) if cfg.third_task else None
    tracker = MlflowTracker(OmegaConf.merge(base, {"tracking": {"experiment": cfg.experiment}, "study": cfg.experiment}))
    RESULTS.mkdir(exist_ok=True)
    with tracker.parent_run("sparse-label-study"):
        tracker.mlflow.log_text(OmegaConf.to_yaml(cfg), "study_config.yaml")
        results = comparison(cfg, ds, ds3)
        table = summary_table(results)
        tracker.log_table(results, "results/comparison_by_split.json")
        tracker.log_table(table, "results/comparison.json")
        sweep = fraction_sweep(cfg, ds)
        tracker.log_table(sweep, "results/label_fraction.json")
        units = {**ds.units, **(ds3.units if ds3 is not None else {})}
        for name, fig in (("comparison", comparison_plot(table)), ("label_fraction", fraction_plot(sweep))):
            fig.savefig(RESULTS / f"{name}.png", dpi=110)
            tracker.log_figure(fig, f"results/{name}.png")
        text = markdown(table, units)
        (RESULTS / "comparison.md").write_text(text + "\n")
        results.to_csv(RESULTS / "comparison_by_split.csv", index=False)
        sweep.to_csv(RESULTS / "label_fraction.csv", index=False)
    update_readme(text + "\n\n![held-out R² by method](experiments/results/comparison.png)\n\n"
                  "![R² against the fraction of labels kept](experiments/results/label_fraction.png)")
    print(text)
    print(sweep.groupby(["task", "method", "fraction"]).r2.agg(["mean", "std"]).round(3).to_string())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main(study_config(sys.argv[1:]))

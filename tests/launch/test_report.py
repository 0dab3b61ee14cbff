"""launch.comparison.report: statistics by hand, against scipy and against the figures of the
hand-written t distribution it had before; a whole report from synthetic runs."""

import json
import math
import os

import pytest
from scipy import stats as scipy_stats

from launch.comparison import report


def run(task, variant, seed, value, *, budget=0, steps=(100, 200, 300), metric="accuracy",
        extra=None):
    """A fine-tuning result as launch.compare hands it over; dev is test + 0.01."""
    curve = [{"step": s, metric: value * (i + 1) / len(steps), "examples": 50.0}
             for i, s in enumerate(steps)]
    return {"task": task, "main_metric": metric, "seed": seed, "steps": steps[-1],
            "init_from": None if variant == "scratch" else "/ckpt", "best_step": steps[-1],
            "train_examples": budget or 1000, "train_seconds": 1.5, "curve": curve,
            "dev": {metric: value + 0.01, "examples": 50.0},
            "test": {metric: value, "examples": 60.0, **(extra or {})},
            "variant": variant, "budget": budget, "label": f"{variant} seed {seed}"}


def test_describe_mean_and_sample_std():
    d = report.describe([0.7, 0.8, 0.9])
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.8) and d["std"] == pytest.approx(0.1)
    assert d["values"] == [0.7, 0.8, 0.9]
    assert report.describe([0.5]) == {"n": 1, "mean": 0.5, "std": 0.0, "values": [0.5]}


@pytest.mark.parametrize("df,expected", [(2, 4.302653), (4, 2.776445), (10, 2.228139),
                                         (1e6, 1.959966), (1e9, 1.959964)])
def test_t_quantile_known_values(df, expected):
    assert report.t_quantile(0.975, df) == pytest.approx(expected, abs=2e-6)
    assert report.t_quantile(0.025, df) == pytest.approx(-expected, abs=2e-6)
    assert report.t_quantile(0.5, df) == 0.0


def test_t_quantile_one_df_is_the_cauchy_quantile():
    assert report.t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-10)


@pytest.mark.parametrize("df", [1, 1.44, 2.5, 3, 7.3, 30, 250, 5e4])
def test_t_quantile_and_cdf_match_scipy(df):
    for p in (0.6, 0.9, 0.95, 0.975, 0.995, 0.9995):
        assert report.t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9)
    for t in (-3.0, -0.4, 0.0, 1.0, 2.5, 8.0):
        assert report.t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), rel=1e-9)


# t_quantile(0.975, df), t_cdf(2.0, df) as the hand-written incomplete beta gave them (by a
# continued fraction and bisection) before SciPy replaced it: a report's figures stay the same.
HAND_WRITTEN = [(1, 12.706204736174659, 0.8524163823495668),
                (2.5, 3.5746548420036772, 0.9213042521210172),
                (4, 2.7764451051977908, 0.9419417382415922),
                (7.3, 2.3450667365477003, 0.9580294803329484),
                (30, 2.042272456301233, 0.9726874775185086)]


@pytest.mark.parametrize("df,quantile,cdf", HAND_WRITTEN)
def test_scipy_gives_the_figures_of_the_hand_written_t(df, quantile, cdf):
    assert report.t_quantile(0.975, df) == pytest.approx(quantile, rel=1e-9)
    assert report.t_cdf(2.0, df) == pytest.approx(cdf, rel=1e-9)


def test_past_1e7_df_the_hand_written_normal_limit_was_within_2e9():
    # The old code switched to the normal distribution there; SciPy keeps the t (1.2e-9 apart).
    assert report.t_quantile(0.975, 1e9) == pytest.approx(1.9599639845400532, rel=2e-9)
    assert report.t_cdf(2.0, 1e9) == pytest.approx(0.9772498680518208, rel=2e-9)


@pytest.mark.parametrize("values,baseline,ci,df", [
    ([0.80, 0.82, 0.84], [0.70, 0.75], [-0.08081265540471319, 0.2708126554047131],
     1.439422909786196),
    ([71.2, 69.8, 73.5, 70.1], [64.0, 66.3, 61.9], [2.6966094039221655, 11.47005726274452],
     3.6608519964036974)])
def test_welch_intervals_are_those_of_the_hand_written_t(values, baseline, ci, df):
    c = report.compare(values, baseline)
    assert c["df"] == pytest.approx(df, rel=1e-12)
    assert c["ci"] == pytest.approx(ci, rel=1e-9)


def test_t_quantile_refuses_what_has_no_quantile():
    for p, df in ((0.0, 3), (1.0, 3), (0.5, 0), (0.5, -1)):
        with pytest.raises(ValueError, match="t_quantile needs 0 < p < 1 and df > 0"):
            report.t_quantile(p, df)


def test_welch_interval_by_hand():
    # Equal n and equal spread: Welch's df is exactly 2(n - 1) = 4, so t = 2.776445.
    c = report.compare([0.80, 0.82, 0.84], [0.70, 0.72, 0.74])
    half = 2.776445 * math.sqrt(0.02 ** 2 / 3 + 0.02 ** 2 / 3)
    assert c["diff"] == pytest.approx(0.10)
    assert c["df"] == pytest.approx(4.0)
    assert c["ci"] == pytest.approx([0.10 - half, 0.10 + half], abs=1e-6)
    assert c["pooled_std"] == pytest.approx(0.02)
    assert c["beats_by_2std"] is True


def test_welch_unequal_variances():
    a, b = [0.80, 0.82, 0.84], [0.70, 0.75]
    va, vb = 0.02 ** 2 / 3, (0.05 / math.sqrt(2)) ** 2 / 2
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1)
    c = report.compare(a, b)
    assert c["df"] == pytest.approx(df)
    half = report.t_quantile(0.975, df) * math.sqrt(va + vb)
    assert c["ci"] == pytest.approx([0.095 - half, 0.095 + half])
    ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert c["ci"] == pytest.approx([ci.low, ci.high], rel=1e-8)


def test_beats_by_2std_false_when_spread_is_large():
    # diff 0.05; pooled std sqrt((0.05² + 0.02²) / 2) = 0.0381, twice that is 0.076.
    c = report.compare([0.80, 0.85, 0.90], [0.78, 0.80, 0.82])
    assert c["diff"] == pytest.approx(0.05)
    assert c["pooled_std"] == pytest.approx(math.sqrt((0.05 ** 2 + 0.02 ** 2) / 2))
    assert c["beats_by_2std"] is False
    assert c["ci"][0] < 0 < c["ci"][1]


def test_single_seed_has_no_interval_and_never_beats():
    c = report.compare([0.9], [0.5])
    assert c["diff"] == pytest.approx(0.4)
    assert c["ci"] is None and c["df"] is None and c["beats_by_2std"] is False
    assert report.compare([0.9, 0.92], [0.5])["ci"] is None


def test_identical_seeds_give_a_point_interval():
    c = report.compare([0.9, 0.9], [0.8, 0.8])
    assert c["ci"] == pytest.approx([0.1, 0.1]) and c["beats_by_2std"] is True


def test_summarize_groups_metrics_and_comparisons():
    extra = {"macro_f1": 0.5, "HasAns_total": 10, "total": 20.0, "flag": True}
    runs = ([run("t", "scratch", s, v, extra=extra) for s, v in enumerate([0.6, 0.62, 0.64])]
            + [run("t", "pretrained", s, v) for s, v in enumerate([0.80, 0.82, 0.84])]
            + [run("t", "pretrained", 0, 0.7, budget=100), run("t", "scratch", 0, 0.4, budget=100)])
    s = report.summarize(runs)
    json.dumps(s, allow_nan=False)  # JSON as it is
    keys = [(g["task"], g["budget"], g["variant"]) for g in s["groups"]]
    assert keys == [("t", 100, "scratch"), ("t", 100, "pretrained"), ("t", 0, "scratch"),
                    ("t", 0, "pretrained")]
    scratch_all = s["groups"][2]
    assert list(scratch_all["metrics"]["test"]) == ["accuracy", "macro_f1"]  # no counts, no bools
    assert scratch_all["metrics"]["test"]["accuracy"]["mean"] == pytest.approx(0.62)
    assert scratch_all["metrics"]["dev"]["accuracy"]["mean"] == pytest.approx(0.63)
    main = [c for c in s["comparisons"] if c["main"] and c["split"] == "test"]
    assert [(c["budget"], c["variant"]) for c in main] == [(100, "pretrained"), (0, "pretrained")]
    assert main[0]["diff"] == pytest.approx(0.3) and main[0]["ci"] is None
    assert main[1]["diff"] == pytest.approx(0.2) and main[1]["beats_by_2std"] is True
    assert main[1]["ci"][0] > 0 and (main[1]["n"], main[1]["n_baseline"]) == (3, 3)


def synthetic_runs():
    runs = []
    for budget, gain in [(100, 0.15), (500, 0.08), (0, 0.03)]:
        for seed in range(3):
            base = 0.6 + 0.1 * (budget or 2000) / 2000 + 0.01 * seed
            runs.append(run("glue/sst2", "scratch", seed, base, budget=budget))
            runs.append(run("glue/sst2", "pretrained", seed, base + gain, budget=budget))
            runs.append(run("glue/sst2", "pretrained+tapt", seed, base + gain + 0.01,
                            budget=budget))
    # A second task with one budget, one seed per side, and seeds evaluated at different steps.
    runs.append(run("squad", "scratch", 0, 40.0, metric="f1", extra={"exact": 30.0}))
    runs.append(run("squad", "pretrained", 0, 70.0, metric="f1", steps=(50, 150, 250)))
    runs.append(run("squad", "pretrained", 1, 71.0, metric="f1", steps=(60, 160, 260)))
    return runs


def test_write_report_writes_markdown_json_and_plots(tmp_path):
    runs = synthetic_runs()
    context = {"pretraining": "python -m launch.pretrain --config=launch/configs/bert.py:tiny",
               "final MLM accuracy": 0.41, "hardware": {"devices": 8}}
    out = str(tmp_path / "rep")
    summary = report.write_report(out, runs, title="Does pretraining help?", context=context)

    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f) == {"runs": runs, "summary": summary, "context": context}
    with open(os.path.join(out, "report.md")) as f:
        md = f.read()
    assert md.startswith("# Does pretraining help?")
    assert "- **final MLM accuracy**: `0.41`" in md
    assert "| glue/sst2 | 100 | accuracy | 0.6150 ± 0.0100 (3) | pretrained | 0.7650 ± 0.0100 (3)" \
        " | +0.1500 [+0.1273, +0.1727] | yes |" in md
    assert "| glue/sst2 | all (1000) | accuracy |" in md and "pretrained+tapt" in md
    assert "| squad | all (1000) | f1 | 40.00 ± 0.00 (1) | pretrained | 70.50 ± 0.71 (2) | " \
        "+30.50 [n/a, n=1] | no |" in md
    for section in ("## Context", "## Did pretraining help?", "## Sample efficiency",
                    "## All metrics", "## Every run"):
        assert section in md
    assert "exact=30.00" in md  # every metric of every seed is shown
    pngs = ["summary.png", "budgets_glue_sst2.png", "curves_glue_sst2_100.png",
            "curves_glue_sst2_500.png", "curves_glue_sst2_all.png", "curves_squad.png"]
    for name in pngs:
        assert f"![{name}]({name})" in md
        path = os.path.join(out, name)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 1000
    assert sorted(os.listdir(out)) == sorted(pngs + ["report.md", "results.json"])


def test_calibration_section_shows_test_ece_beside_accuracy(tmp_path):
    runs = [run("t", v, s, acc, extra={"ece": e}) for v, acc, e in
            (("scratch", 0.6, 0.05), ("pretrained", 0.7, 0.15)) for s in range(2)]
    runs.append(run("reg", "scratch", 0, 0.5, metric="pearson"))  # regression: no ECE
    md = report.render_markdown("T", runs, report.summarize(runs), None, [])
    section = md.split("## Calibration")[1].split("\n## ")[0]
    assert "| t | all (1000) | pretrained | 0.7000 ± 0.0000 (2) | 0.1500 ± 0.0000 (2) |" in section
    assert "| t | all (1000) | scratch |" in section and "| reg |" not in section
    assert "## Calibration" not in report.render_markdown(
        "T", runs[-1:], report.summarize(runs[-1:]), None, [])


def test_report_without_a_baseline_still_renders(tmp_path):
    summary = report.write_report(str(tmp_path), [run("t", "pretrained", 0, 0.8)], title="x")
    assert summary["comparisons"] == []
    with open(tmp_path / "report.md") as f:
        assert "No variant has a scratch baseline" in f.read()
    assert os.path.exists(tmp_path / "curves_t.png")
    assert not os.path.exists(tmp_path / "summary.png")


def test_safe_name():
    assert report.safe_name("glue/sst2") == "glue_sst2"
    assert report.safe_name("../a b:c") == "a_b_c"

"""The Python module against the CLI's JSON: the same figures, the same errors (as ValueError)."""
import json
import sys
import os
import subprocess
import tempfile

import numpy as np
import pytest

import systrain

BIN = os.environ.get("SYSTRAIN_BIN", "build/systrain")


def cli_json(*args):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.json")
        subprocess.run([BIN, *args, "--json", out], check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def test_presets_and_spec_fields():
    assert "tpu-like" in systrain.presets() and "tpu-v3" in systrain.presets()
    s = systrain.load_spec("tpu-v3")
    assert (s.array.rows, s.array.cols, s.array.count) == (128, 128, 2)
    assert s.array.dataflow == "ws" and s.array.format == "bf16"
    assert s.dram.kind == "hbm2" and s.dram.granule_bytes == 32
    s.array.rows = 64                 # attributes write through
    assert s.array.rows == 64
    assert "rows = 64" in s.to_toml()
    s.validate()


def test_bad_values_raise_value_error_with_the_cli_message():
    s = systrain.load_spec("tpu-like")
    s.array.rows = -1
    with pytest.raises(ValueError, match="array.rows"):
        s.validate()
    with pytest.raises(ValueError, match="dataflow"):
        s.array.dataflow = "xs"
    with pytest.raises(ValueError, match="no such file"):
        systrain.load_spec("no-such-preset")
    with pytest.raises(ValueError, match="mode"):
        systrain.project(model="resnet8", input=32, batch=2, mode="fly")
    with pytest.raises(ValueError, match="fold_bn"):
        systrain.project(model="resnet8", input=32, batch=2, mode="train", fold_bn=True)
    with pytest.raises(ValueError, match="inner sizes"):
        systrain.gemm(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32))


def test_cost_gemm_equals_the_cli():
    py = systrain.cost_gemm(256, 256, 256, spec="tpu-v3", c_format="array")
    cli = cli_json("cost", "--spec", "tpu-v3", "--gemm", "256,256,256", "--c-format", "array")
    assert py["counters"]["cycles.total"] == 2388      # README "Agreement with a real TPU v3"
    assert set(py["counters"]) == set(cli["counters"])
    for k, v in cli["counters"].items():
        assert py["counters"][k] == pytest.approx(v, rel=1e-12), k
    assert py["plans"][0]["tile_m"] == cli["plan"]["tile_m"] == 256


def test_cost_conv_and_spec_object():
    s = systrain.load_spec("tpu-like")
    a = systrain.cost_conv("mb2ic16ih14oc32kh3ph1", spec=s, direction="bwd_data")
    b = systrain.cost_conv("mb2ic16ih14oc32kh3ph1", spec="tpu-like", direction="bwd_data")
    assert a["counters"] == b["counters"]
    assert a["counters"]["macs.issued"] > 0
    s.array.conv_mapping = "channel_tap"   # K per tap padded to the rows: more MACs issued
    t = systrain.cost_conv("mb2ic16ih14oc32kh3ph1", spec=s, direction="fwd")
    assert t["counters"]["macs.issued"] > systrain.cost_conv("mb2ic16ih14oc32kh3ph1", spec="tpu-like")["counters"]["macs.issued"]


def test_project_equals_the_cli():
    p = systrain.project(model="resnet18", spec="tpu-like", input=64, batch=2)
    cli = cli_json("project", "--model", "resnet18", "--input", "64", "--batch", "2")
    assert p.cycles == cli["total_cycles"]
    assert p.seconds == pytest.approx(cli["seconds"], rel=1e-12)
    assert p.energy_j == pytest.approx(cli["energy_j"], rel=1e-12)
    assert p.non_conv_time_share == pytest.approx(cli["non_conv_time_share"], rel=1e-12)
    assert set(p.by_kind) == set(cli["by_kind"])
    assert sum(r["counters"]["cycles.total"] for r in p.records) == pytest.approx(p.cycles, rel=1e-12)
    f = systrain.project(model="resnet18", spec="tpu-like", input=64, batch=1, mode="infer", fold_bn=True)
    assert f.mode == "infer (BN folded)" and "relu_fwd" in f.by_kind


def test_gemm_is_the_arrays_bits():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((37, 70)).astype(np.float32)
    b = rng.standard_normal((70, 29)).astype(np.float32)
    c, cost = systrain.gemm(a, b, spec="tpu-like")
    assert c.shape == (37, 29) and c.dtype == np.float32
    # bf16 operands, fp32 accumulation in chunks of 32 rows down a column: close to fp64, not equal.
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.max(np.abs(c - ref)) < 0.1
    assert np.max(np.abs(c - ref)) > 0
    # Deterministic, and the same bits as the CLI's own GEMM path would give: the cost is the CLI's.
    c2, _ = systrain.gemm(a, b, spec="tpu-like")
    assert np.array_equal(c, c2)
    assert cost["counters"]["macs.issued"] == 37 * 70 * 29
    # An fp32 array with an unfused MAC differs from the fused one somewhere.
    s = systrain.load_spec("tpu-like")
    s.array.format = "fp32"
    c32, _ = systrain.gemm(a, b, spec=s)
    assert np.max(np.abs(c32 - ref)) < 1e-4


def test_the_example_runs_and_writes_a_png():
    here = os.path.dirname(os.path.abspath(__file__))
    example = os.path.join(here, "..", "..", "examples", "bandwidth_sweep.py")
    with tempfile.TemporaryDirectory() as d:
        png = os.path.join(d, "sweep.png")
        r = subprocess.run([sys.executable, example, png], check=True, capture_output=True, text=True,
                           env={**os.environ, "MPLBACKEND": "Agg"})
        with open(png, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(png) > 10000
        # The printed figures are the projection's: 32 GB/s with one array is the README's 1626 ms.
        assert "32 GB/s 1626 ms" in r.stdout

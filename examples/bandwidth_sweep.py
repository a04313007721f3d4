#!/usr/bin/env python3
"""ResNet-50 training step time against DRAM bandwidth, for one and two arrays, on tpu-like.

    PYTHONPATH=build/python python3 examples/bandwidth_sweep.py [out.png]
"""
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

import systrain  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "bandwidth_sweep.png"
bandwidths = [8, 16, 32, 64, 128, 256]
for count in (1, 2):
    ms = []
    for gbps in bandwidths:
        spec = systrain.load_spec("tpu-like")
        spec.array.count = count
        spec.dram.bandwidth_gbps = gbps
        ms.append(1e3 * systrain.project(model="resnet50", spec=spec, input=224, batch=32).seconds)
    plt.plot(bandwidths, ms, marker="o", label=f"{count} array(s)")
    print(f"{count} array(s): " + ", ".join(f"{b} GB/s {t:.0f} ms" for b, t in zip(bandwidths, ms)))
plt.xscale("log", base=2)
plt.xlabel("DRAM bandwidth (GB/s)")
plt.ylabel("ResNet-50 training step, batch 32 (ms)")
plt.title("tpu-like: step time vs bandwidth")
plt.legend()
plt.grid(True, alpha=0.3)
plt.savefig(out, dpi=100)
print(f"wrote {out}")

"""``annotate --executor ray`` on a 2-node ``ray.cluster_utils.Cluster`` (two raylets on this machine):
stage shards are written by both nodes, and the rows are those of the local executor."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from paraspeechclap.testing import tone

ray = pytest.importorskip("ray")


def test_two_nodes_write_shards(tiny_dir, tmp_path):
    from ray.cluster_utils import Cluster

    from paraspeechclap import load_model
    from paraspeechclap.annotate import Settings, annotate, items_from_dir

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(16):
        sf.write(clips / f"c{i:02d}.wav", tone(0.5, 120.0 + 10 * i, seed=i), 16000)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        model = load_model(str(tiny_dir), precision="fp32")
        spec = {"name_or_path": str(tiny_dir), "precision": "fp32", "device": "cpu"}
        run = {}
        for name in ("local", "ray"):
            settings = Settings(attributes=["gender"], shard_size=1, executor=name)
            run[name] = annotate(model, items_from_dir(clips), tmp_path / name, settings, progress=False,
                                 model_spec=spec, executor_options={"address": cluster.address, "workers": 2})
    finally:
        ray.shutdown()
        cluster.shutdown()
    ex = run["ray"]["executor"]
    assert ex["cluster"]["nodes"] == 2
    assert len(ex["shards_by_node"]) == 2 and sum(ex["shards_by_node"].values()) == 16  # both nodes wrote
    rows = {n: [json.loads(x) for x in (tmp_path / n / "manifest.jsonl").read_text().splitlines()] for n in run}
    assert [r["labels"] for r in rows["ray"]] == [r["labels"] for r in rows["local"]]
    assert [r["text_description"] for r in rows["ray"]] == [r["text_description"] for r in rows["local"]]

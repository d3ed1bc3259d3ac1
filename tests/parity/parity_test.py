"""Parity of the C++ models with the independent reference in reference.py.

For each case, //trainer/models:parity_dump builds the model (PyTorch default init from a seed),
runs forward + backward on fixed tokens and pickles parameters, logits, loss and gradients. The
reference loads the same parameters, recomputes everything with autograd and must agree to fp32
round-off. Parameter counts are checked against closed-form formulas.
"""

import os
import subprocess
import unittest

import torch
import torch.jit._pickle  # noqa: F401  (restore_type_tag, allow-listed below)
import torch.nn.functional as F

from tests import testlib
from tests.parity import reference

TINY = dict(vocab_size=65, d_model=32, n_layers=2, n_heads=2, d_ff=128, seq_len=64, batch=2,
            worker_interval=4, worker_conv_kernel=3, sparse_capacity=0.5, sparse_dense_layers=1,
            sparse_aux_loss_weight=0.01, hybrid_static_mlp_ratio=2)


class ParityTest(unittest.TestCase):

    def dump(self, arch, phase=0, seed=0, **overrides):
        cfg = dict(TINY, **overrides)
        if arch == "hybrid":
            cfg.setdefault("hybrid_layer_types",
                           ["attn" if i < (cfg["n_layers"] + 1) // 2 else "mlp"
                            for i in range(cfg["n_layers"])])
        path = os.path.join(testlib.tmpdir(), f"{arch}_{phase}_{seed}.pt")
        args = [testlib.binary("trainer/models/parity_dump"), f"--arch={arch}", f"--out={path}",
                f"--phase={phase}", f"--seed={seed}"]
        for key, value in cfg.items():
            if isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            elif isinstance(value, bool):
                value = str(value).lower()
            args.append(f"--{key}={value}")
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        # A typed c10::Dict pickles with one TorchScript helper; allow just that one global.
        with torch.serialization.safe_globals([torch.jit._pickle.restore_type_tag]):
            return cfg, torch.load(path)

    def check(self, arch, phase=0, seed=0, **overrides):
        """overrides may set loss="training": the dumped loss and gradients are then of the
        training pass (MatFormer's joint loss), recomputed by reference.training_loss."""
        cfg, dump = self.dump(arch, phase, seed, **overrides)
        params = {k[len("param/"):]: v.clone().requires_grad_(True)
                  for k, v in dump.items() if k.startswith("param/")}
        tokens = dump["tokens"]
        inputs, targets = tokens[:, :-1], tokens[:, 1:]

        logits, mask, aux, stats = reference.forward(arch, params, cfg, inputs, phase)
        lm_loss = F.cross_entropy(logits[:, mask].reshape(-1, cfg["vocab_size"]),
                                  targets[:, mask].reshape(-1))
        loss = lm_loss + aux
        if cfg.get("loss") == "training":
            loss = reference.training_loss(arch, params, cfg, inputs, targets) + aux
        loss.backward()

        tight = dict(rtol=1e-4, atol=1e-5)
        self.assertTrue(torch.equal(dump["train_positions"], mask))
        torch.testing.assert_close(dump["logits"], logits.detach(), **tight)
        torch.testing.assert_close(dump["lm_loss"], lm_loss.detach(), **tight)
        torch.testing.assert_close(dump["aux_loss"], aux.detach(), **tight)
        torch.testing.assert_close(dump["loss"], loss.detach(), **tight)
        for name, param in params.items():
            # Every dumped parameter must take part in the reference's computation.
            self.assertIsNotNone(param.grad, f"{arch}: reference never used {name}")
            torch.testing.assert_close(dump["grad/" + name], param.grad, rtol=1e-4, atol=1e-6,
                                       msg=lambda m, n=name: f"{arch} grad {n}: {m}")
        self.assertEqual(int(dump["num_parameters"]), sum(p.numel() for p in params.values()))
        self.assertEqual(int(dump["num_parameters"]), reference.parameter_count(arch, cfg))
        return cfg, dump, stats

    def test_standard(self):
        self.check("standard")

    def test_standard_odd_shapes(self):
        # Three heads of width 16, a window that is not a power of two, three rows.
        self.check("standard", seed=7, d_model=48, n_heads=3, n_layers=3, d_ff=80, seq_len=37,
                   batch=3)

    def test_worker_phases(self):
        for phase in range(4):
            with self.subTest(phase=phase):
                self.check("worker", phase=phase, seed=phase)

    def test_worker_uneven_window(self):
        # T = 37 is not a multiple of k = 3: the forced last position is an extra worker.
        self.check("worker", phase=1, seed=3, seq_len=37, worker_interval=3,
                   worker_conv_kernel=2)

    def test_worker_adds_exactly_the_documented_parameters(self):
        _, standard = self.dump("standard")
        _, worker = self.dump("worker")
        d, n = TINY["d_model"], TINY["n_layers"]
        self.assertEqual(int(worker["num_parameters"]) - int(standard["num_parameters"]),
                         n * (3 * d + d) + d)

    def test_sparse_depth(self):
        # capacity 0.25 bounds routing at ceil(1.5 * 0.25 * 64) = 24 of 64 slots, below what an
        # untrained router asks for, so the causal slot bound itself is compared too.
        for dense, seed, capacity in ((1, 0, 0.5), (0, 5, 0.5), (1, 0, 0.25)):
            with self.subTest(dense_layers=dense, capacity=capacity):
                cfg, dump, stats = self.check("sparse_depth", seed=seed, n_layers=3,
                                              sparse_dense_layers=dense, sparse_capacity=capacity,
                                              sparse_aux_loss_weight=0.5, batch=3)
                if capacity < 0.5:
                    self.assertGreater(stats["capped_rows"], 0)
                # Routing must be non-trivial for the comparison to mean anything.
                for fraction in stats["routed_fractions"]:
                    self.assertGreater(fraction, 0.1)
                    self.assertLess(fraction, 0.9)
                self.assertAlmostEqual(float(dump["stats/layers_per_token"]),
                                       stats["layers_per_token"], places=6)
                self.assertGreater(float(dump["aux_loss"]), 0.0)

    def test_hybrid_mixed_pattern(self):
        self.check("hybrid", seed=2, n_layers=3, hybrid_layer_types=["mlp", "attn", "mlp"],
                   hybrid_static_mlp_ratio=3)

    def test_hybrid_default_pattern(self):
        self.check("hybrid", seed=4, n_layers=4)

    def test_sqa_presets(self):
        # H = 8 heads of width 8: sqa (4 query, 2 key/value heads), ssqa (4, 4), xsqa (2, 2),
        # xsmqa (2, 1).
        for q_heads, kv_heads in ((4, 2), (4, 4), (2, 2), (2, 1)):
            with self.subTest(q_heads=q_heads, kv_heads=kv_heads):
                self.check("sqa", seed=q_heads + kv_heads, d_model=64, n_heads=8,
                           mixers=["sqa", "sqa"], sqa_q_heads=q_heads, sqa_kv_heads=kv_heads)

    def test_mixed_every_mixer(self):
        # T = 37 and 16-token slices: three chunks, the last one short.
        self.check("mixed", seed=3, n_layers=5, n_heads=4, seq_len=37, batch=3,
                   mixers=["attn", "sqa", "sliced_attn", "static_mlp", "none"], sqa_q_heads=2,
                   sqa_kv_heads=1, slice_len=16, hybrid_static_mlp_ratio=3)

    def test_looped(self):
        self.check("looped", seed=5, mixers=["attn", "attn"], loops=3, loop_input_injection=True,
                   loop_embedding=True, loop_inter_linear=True)
        self.check("looped", seed=6, mixers=["attn", "sliced_attn"], loops=2, slice_len=16)

    def test_matformer_joint_loss_and_mix_n_match(self):
        # Gradients of the joint loss (mean over the granularities); logits at the largest, then
        # Mix'n'Match (the smallest in layer 0, the largest in layer 1).
        for eval_granularity in ([2, 2], [0, 2]):
            with self.subTest(eval_granularity=eval_granularity):
                self.check("matformer", seed=8, mixers=["attn", "attn"],
                           matformer_granularities=[0.25, 0.5, 1.0],
                           matformer_eval_granularity=eval_granularity, loss="training")

    def test_attn_drop(self):
        self.check("attn_drop", seed=10, n_layers=3, mixers=["attn", "none", "none"])


if __name__ == "__main__":
    unittest.main()

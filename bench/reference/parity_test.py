"""The benchmark's PyTorch references compute Gauntlet's function, not a look-alike.

For each architecture, //trainer/models:parity_dump builds Gauntlet's model at tiny size, runs
forward + backward on fixed tokens and dumps parameters, logits, loss and gradients. The reference
loads those parameters with load_state_dict(strict=True) (same parameter set, names and shapes),
and must reproduce the logits, the train mask, the auxiliary loss, the loss and every gradient to
fp32 round-off, through both of its paths: logits() at every position and the training forward
(which computes logits only where the loss needs them).
"""

import dataclasses
import os
import subprocess
import unittest

import torch
import torch.jit._pickle  # noqa: F401  (restore_type_tag, allow-listed below)

from bench.reference import models
from tests import testlib

TIGHT = dict(rtol=1e-4, atol=1e-5)


class ReferenceParityTest(unittest.TestCase):

    def dump(self, config, batch, phase, seed, loss):
        path = os.path.join(testlib.tmpdir(), f"{config.arch}_{phase}_{seed}.pt")
        args = [testlib.binary("trainer/models/parity_dump"), f"--out={path}",
                f"--batch={batch}", f"--phase={phase}", f"--seed={seed}", f"--loss={loss}"]
        for field in dataclasses.fields(config):
            value = getattr(config, field.name)
            if field.name in ("dropout",) or value == ():
                continue
            if isinstance(value, tuple):
                value = ",".join(map(str, value))
            elif isinstance(value, bool):
                value = str(value).lower()
            args.append(f"--{field.name}={value}")
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        with torch.serialization.safe_globals([torch.jit._pickle.restore_type_tag]):
            return torch.load(path)

    def check(self, arch, phase=0, seed=0, batch=2, loss="logits", **overrides):
        """loss="training": the gradients are of the training pass's loss (MatFormer's joint
        loss), which the reference's forward(tokens, targets) computes."""
        config = dataclasses.replace(models.model_config("seed-standard", "tiny"), arch=arch,
                                     **overrides)
        dump = self.dump(config, batch, phase, seed, loss)
        model = models.build(config)
        model.load_state_dict({k[len("param/"):]: v for k, v in dump.items()
                               if k.startswith("param/")}, strict=True)
        model.train()  # the training path; dropout is 0 at tiny size
        self.assertEqual(int(dump["num_parameters"]), sum(p.numel() for p in model.parameters()))
        inputs, targets = dump["tokens"][:, :-1], dump["tokens"][:, 1:]

        logits, mask, aux = model.logits(inputs, phase)
        torch.testing.assert_close(logits, dump["logits"], **TIGHT)
        self.assertTrue(torch.equal(mask, dump["train_positions"]))
        torch.testing.assert_close(aux, dump["aux_loss"], **TIGHT)
        if phase != 0:
            return
        # The benchmark's own path: loss (and its gradients) from the training forward.
        loss = model(inputs, targets)
        torch.testing.assert_close(loss.detach(), dump["loss"], **TIGHT)
        loss.backward()
        for name, param in model.named_parameters():
            self.assertIsNotNone(param.grad, f"{arch}: {name} got no gradient")
            torch.testing.assert_close(param.grad, dump["grad/" + name], rtol=1e-4, atol=1e-6,
                                       msg=lambda m, n=name: f"{arch} grad {n}: {m}")

    def test_standard(self):
        self.check("standard")

    def test_standard_odd_shapes(self):
        self.check("standard", seed=7, d_model=48, n_heads=3, n_layers=3, d_ff=80, seq_len=37,
                   batch=3)

    def test_worker_every_phase(self):
        for phase in range(4):
            with self.subTest(phase=phase):
                self.check("worker", phase=phase, seed=phase)

    def test_worker_irregular_grid(self):
        # T = 37, k = 3: the forced last position breaks the grid (index path, not slices).
        self.check("worker", seed=3, seq_len=37, worker_interval=3, worker_conv_kernel=2)

    def test_sparse_depth(self):
        # capacity 0.25 caps routing at 24 of 64 slots, so the slot bound is compared too.
        for dense, seed, capacity in ((1, 0, 0.5), (0, 5, 0.5), (1, 0, 0.25)):
            with self.subTest(dense_layers=dense, capacity=capacity):
                self.check("sparse_depth", seed=seed, n_layers=3, sparse_dense_layers=dense,
                           sparse_capacity=capacity, sparse_aux_loss_weight=0.5, batch=3)

    def test_hybrid(self):
        self.check("hybrid", seed=4, n_layers=4)
        self.check("hybrid", seed=2, n_layers=3, hybrid_layer_types=("mlp", "attn", "mlp"),
                   hybrid_static_mlp_ratio=3)

    def test_sqa_presets(self):
        # H = 8: sqa (4 query, 2 key/value heads), ssqa (4, 4), xsqa (2, 2), xsmqa (2, 1).
        for q, kv in ((4, 2), (4, 4), (2, 2), (2, 1)):
            with self.subTest(q_heads=q, kv_heads=kv):
                self.check("sqa", seed=q + kv, d_model=64, n_heads=8, mixers=("sqa", "sqa"),
                           sqa_q_heads=q, sqa_kv_heads=kv)

    def test_mixed_every_mixer(self):
        # T = 37 with 16-token slices: the last chunk is padded.
        self.check("mixed", seed=3, n_layers=5, n_heads=4, seq_len=37, batch=3,
                   mixers=("attn", "sqa", "sliced_attn", "static_mlp", "none"), sqa_q_heads=2,
                   sqa_kv_heads=1, slice_len=16, hybrid_static_mlp_ratio=3)

    def test_looped(self):
        self.check("looped", seed=5, mixers=("attn", "attn"), loops=3, loop_input_injection=True,
                   loop_embedding=True, loop_inter_linear=True)
        self.check("looped", seed=6, mixers=("attn", "sliced_attn"), loops=2, slice_len=16)

    def test_matformer(self):
        granularities = (0.25, 0.5, 1.0)
        # Joint training loss (mean over granularities) and its gradients; logits at the largest.
        self.check("matformer", seed=8, mixers=("attn", "attn"),
                   matformer_granularities=granularities, loss="training")
        # Mix'n'Match logits: a different granularity per layer.
        self.check("matformer", seed=9, mixers=("attn", "attn"),
                   matformer_granularities=granularities, matformer_eval_granularity=(0, 2),
                   loss="training")

    def test_attn_drop(self):
        self.check("attn_drop", seed=10, n_layers=3, mixers=("attn", "none", "none"))

    def test_benchmark_sizes_match_gauntlet_defaults(self):
        # The named sizes are restated here; side_by_side also checks them against what
        # trainer_bench reports. This pins the parts the run cannot see (no Gauntlet there).
        self.assertEqual(models.model_config("gpt2-small").vocab_size, 50304)
        seed = models.model_config("seed-worker")
        self.assertEqual((seed.d_model, seed.n_layers, seed.n_heads, seed.d_ff, seed.seq_len,
                          seed.dropout), (256, 4, 4, 1024, 1024, 0.1))


if __name__ == "__main__":
    unittest.main()

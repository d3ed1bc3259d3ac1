// Builds one model from flags and a seed, runs forward + backward on fixed random tokens, and
// writes parameters, logits, loss and gradients as a pickled Dict[str, Tensor] that Python's
// torch.load reads. tests/parity/ compares it against an independent PyTorch reference.
//
//   parity_dump --arch=worker --phase=1 --out=/tmp/dump.pt

#include <torch/script.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/model_config.h"
#include "trainer/models/model.h"
#include "trainer/models/registry.h"

ABSL_FLAG(std::string, arch, "standard", "registry key");
ABSL_FLAG(int64_t, vocab_size, 65, "vocabulary size");
ABSL_FLAG(int64_t, d_model, 32, "width");
ABSL_FLAG(int64_t, n_layers, 2, "layers");
ABSL_FLAG(int64_t, n_heads, 2, "heads");
ABSL_FLAG(int64_t, d_ff, 128, "FFN width");
ABSL_FLAG(int64_t, seq_len, 64, "context length T (also the window run)");
ABSL_FLAG(int64_t, batch, 2, "rows");
ABSL_FLAG(int64_t, seed, 0, "seeds weights (seed) and tokens (seed + 1)");
ABSL_FLAG(int64_t, phase, 0, "worker phase");
ABSL_FLAG(int64_t, worker_interval, 4, "worker k");
ABSL_FLAG(int64_t, worker_conv_kernel, 3, "worker conv kernel");
ABSL_FLAG(double, sparse_capacity, 0.5, "sparse_depth capacity");
ABSL_FLAG(int64_t, sparse_dense_layers, 1, "sparse_depth dense layers");
ABSL_FLAG(double, sparse_aux_loss_weight, 0.01, "sparse_depth aux weight");
ABSL_FLAG(std::string, hybrid_layer_types, "", "comma-separated attn|mlp per layer");
ABSL_FLAG(int64_t, hybrid_static_mlp_ratio, 2, "hybrid static MLP ratio");
ABSL_FLAG(std::string, mixers, "", "layer-stack archs: comma-separated mixer per layer");
ABSL_FLAG(int64_t, sqa_q_heads, 0, "sqa mixer query heads");
ABSL_FLAG(int64_t, sqa_kv_heads, 0, "sqa mixer key/value heads");
ABSL_FLAG(int64_t, slice_len, 16, "sliced_attn mixer chunk length");
ABSL_FLAG(int64_t, loops, 1, "looped: loops");
ABSL_FLAG(bool, loop_input_injection, false, "looped: input injection");
ABSL_FLAG(bool, loop_embedding, false, "looped: loop embedding");
ABSL_FLAG(bool, loop_inter_linear, false, "looped: inter-loop linears");
ABSL_FLAG(std::string, matformer_granularities, "", "matformer: comma-separated fractions");
ABSL_FLAG(std::string, matformer_train_mode, "joint", "matformer: joint | sample");
ABSL_FLAG(std::string, matformer_eval_granularity, "",
          "matformer: comma-separated granularity index per layer (default: the largest)");
ABSL_FLAG(std::string, loss, "logits",
          "what the gradients are of: 'logits' (MaskedCrossEntropy of Forward's logits + aux) or "
          "'training' (TrainingLoss of ForwardHidden + aux, e.g. MatFormer's joint loss)");
ABSL_FLAG(std::string, out, "", "output file");

namespace gauntlet {
namespace {

int Run() {
  ModelConfig c;
  c.arch = absl::GetFlag(FLAGS_arch);
  c.size = "custom";
  c.vocab_size = absl::GetFlag(FLAGS_vocab_size);
  c.d_model = absl::GetFlag(FLAGS_d_model);
  c.n_layers = absl::GetFlag(FLAGS_n_layers);
  c.n_heads = absl::GetFlag(FLAGS_n_heads);
  c.d_ff = absl::GetFlag(FLAGS_d_ff);
  c.seq_len = absl::GetFlag(FLAGS_seq_len);
  c.dropout = 0.0;  // parity is checked on the deterministic function
  c.worker_interval = absl::GetFlag(FLAGS_worker_interval);
  c.worker_conv_kernel = absl::GetFlag(FLAGS_worker_conv_kernel);
  c.sparse_capacity = absl::GetFlag(FLAGS_sparse_capacity);
  c.sparse_dense_layers = absl::GetFlag(FLAGS_sparse_dense_layers);
  c.sparse_aux_loss_weight = absl::GetFlag(FLAGS_sparse_aux_loss_weight);
  c.hybrid_static_mlp_ratio = absl::GetFlag(FLAGS_hybrid_static_mlp_ratio);
  const std::string types = absl::GetFlag(FLAGS_hybrid_layer_types);
  if (!types.empty()) {
    for (absl::string_view t : absl::StrSplit(types, ',')) {
      c.hybrid_attention_layers.push_back(t == "attn");
    }
  } else {
    for (int64_t i = 0; i < c.n_layers; ++i)
      c.hybrid_attention_layers.push_back(i < (c.n_layers + 1) / 2);
  }
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_mixers), ',', absl::SkipEmpty())) {
    c.mixers.emplace_back(m);
  }
  c.sqa_q_heads = absl::GetFlag(FLAGS_sqa_q_heads);
  c.sqa_kv_heads = absl::GetFlag(FLAGS_sqa_kv_heads);
  c.slice_len = absl::GetFlag(FLAGS_slice_len);
  c.loops = absl::GetFlag(FLAGS_loops);
  c.loop_input_injection = absl::GetFlag(FLAGS_loop_input_injection);
  c.loop_embedding = absl::GetFlag(FLAGS_loop_embedding);
  c.loop_inter_linear = absl::GetFlag(FLAGS_loop_inter_linear);
  for (absl::string_view g :
       absl::StrSplit(absl::GetFlag(FLAGS_matformer_granularities), ',', absl::SkipEmpty())) {
    double value = 0;
    if (!absl::SimpleAtod(g, &value)) {
      std::cerr << "--matformer_granularities: not a number: " << g << "\n";
      return 2;
    }
    c.matformer_granularities.push_back(value);
  }
  c.matformer_train_mode = absl::GetFlag(FLAGS_matformer_train_mode);
  for (absl::string_view g :
       absl::StrSplit(absl::GetFlag(FLAGS_matformer_eval_granularity), ',', absl::SkipEmpty())) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(g, &value)) {
      std::cerr << "--matformer_eval_granularity: not an integer: " << g << "\n";
      return 2;
    }
    c.matformer_eval_granularity.push_back(value);
  }
  if (!c.matformer_granularities.empty() && c.matformer_eval_granularity.empty()) {
    c.matformer_eval_granularity.assign(c.n_layers,
                                        static_cast<int64_t>(c.matformer_granularities.size()) - 1);
  }
  const std::string loss_kind = absl::GetFlag(FLAGS_loss);
  if (loss_kind != "logits" && loss_kind != "training") {
    std::cerr << "--loss: 'logits' or 'training', got " << loss_kind << "\n";
    return 2;
  }
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) {
    std::cerr << "--out: required\n";
    return 2;
  }

  torch::manual_seed(absl::GetFlag(FLAGS_seed));
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> created = CreateModel(c);
  if (!created.ok()) {
    std::cerr << created.status() << "\n";
    return 2;
  }
  std::shared_ptr<LanguageModelImpl> model = *created;
  model->train();  // dropout is 0; train mode exercises the training code path

  torch::manual_seed(absl::GetFlag(FLAGS_seed) + 1);
  const torch::Tensor tokens =
      torch::randint(c.vocab_size, {absl::GetFlag(FLAGS_batch), c.seq_len + 1}, torch::kInt64);
  const torch::Tensor inputs = tokens.narrow(1, 0, c.seq_len);
  const torch::Tensor targets = tokens.narrow(1, 1, c.seq_len);
  const ModelOutput out = model->Forward(inputs, absl::GetFlag(FLAGS_phase));
  const torch::Tensor lm_loss = MaskedCrossEntropy(out.logits, targets, out.train_positions);
  torch::Tensor loss = lm_loss + out.aux_loss;
  if (loss_kind == "training") {
    const ModelOutput hidden = model->ForwardHidden(inputs);
    loss = TrainingLoss(hidden, targets) + hidden.aux_loss;
  }
  loss.backward();

  c10::Dict<std::string, at::Tensor> dump;
  for (const auto& item : model->named_parameters()) {
    dump.insert("param/" + item.key(), item.value().detach().clone());
    dump.insert("grad/" + item.key(), item.value().grad().clone());
  }
  dump.insert("tokens", tokens);
  dump.insert("logits", out.logits.detach());
  dump.insert("train_positions", out.train_positions);
  dump.insert("lm_loss", lm_loss.detach());
  dump.insert("aux_loss", out.aux_loss.detach());
  dump.insert("loss", loss.detach());
  dump.insert("num_parameters", torch::tensor(model->NumParameters(), torch::kInt64));
  for (const auto& [name, value] : out.stats) {
    dump.insert("stats/" + name, value.to(torch::kCPU, torch::kFloat64));
  }
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dump));
  std::ofstream file(out_path, std::ios::binary);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!file) {
    std::cerr << "--out: cannot write " << out_path << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace gauntlet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  try {
    return gauntlet::Run();
  } catch (const c10::Error& e) {
    std::cerr << "torch error: " << e.what_without_backtrace() << "\n";
    return 3;
  }
}

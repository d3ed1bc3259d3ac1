#include "trainer/models/tiny_configs.h"

#include <map>
#include <string>
#include <tuple>
#include <utility>

namespace gauntlet {

ModelConfig TinyConfig(const std::string& name) {
  const std::string arch = name.substr(0, name.find('/'));
  const std::string variant =
      name.find('/') == std::string::npos ? "" : name.substr(name.find('/') + 1);
  ModelConfig c;
  c.arch = arch;
  c.size = "tiny";
  c.vocab_size = 65;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 2;
  c.d_ff = 128;
  c.seq_len = 64;
  c.dropout = 0.0;
  if (arch == "sparse_depth") c.n_layers = 3;  // one dense layer, two routed
  if (arch == "hybrid") c.hybrid_attention_layers = {true, false};
  if (arch == "sqa") {
    // H = 8 heads of width 8, so the four presets give four different head counts.
    c.d_model = 64;
    c.n_heads = 8;
    c.d_ff = 128;
    c.mixers = {"sqa", "sqa"};
    const std::map<std::string, std::pair<int64_t, int64_t>> presets = {
        {"sqa", {4, 2}}, {"ssqa", {4, 4}}, {"xsqa", {2, 2}}, {"xsmqa", {2, 1}}};
    std::tie(c.sqa_q_heads, c.sqa_kv_heads) = presets.at(variant);
  }
  if (arch == "mixed") {
    // Every mixer once; chunks of 16 so sliced attention has several per window.
    c.n_layers = 5;
    c.n_heads = 4;
    c.mixers = {"attn", "sqa", "sliced_attn", "static_mlp", "none"};
    c.sqa_q_heads = 2;
    c.sqa_kv_heads = 1;
    c.slice_len = 16;
    if (variant == "worker") {  // the worker arch as a layer stack
      c.n_layers = 2;
      c.mixers = {"worker", "worker"};
    } else if (variant == "worker_attn") {  // with attention: every position trained
      c.n_layers = 3;
      c.mixers = {"worker", "attn", "none"};
    }
  }
  if (arch == "looped") {
    c.mixers = variant == "worker" ? std::vector<std::string>{"worker", "worker"}
                                   : std::vector<std::string>{"attn", "attn"};
    c.loops = 3;
    c.loop_input_injection = true;
    c.loop_embedding = true;
    c.loop_inter_linear = true;
  }
  if (arch == "matformer") {
    // "worker_<mode>": worker layers (trained at the workers only).
    const bool workers = variant.rfind("worker_", 0) == 0;
    c.mixers = workers ? std::vector<std::string>{"worker", "worker"}
                       : std::vector<std::string>{"attn", "attn"};
    c.matformer_granularities = {0.25, 0.5, 1.0};
    c.matformer_train_mode = workers ? variant.substr(7) : variant;
    c.matformer_eval_granularity = {2, 2};
  }
  if (arch == "attn_drop") {
    c.n_layers = 3;
    c.mixers = {"attn", "none", "none"};
  }
  return c;
}

}  // namespace gauntlet

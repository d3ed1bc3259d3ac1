#include "common/model_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {
namespace {

v1::ModelSpec Spec(const std::string& arch, const std::string& size) {
  v1::ModelSpec spec;
  spec.set_arch(arch);
  spec.set_size(size);
  return spec;
}

// Expects InvalidArgument whose message starts with the YAML field name.
void ExpectFieldError(const v1::ModelSpec& spec, const std::string& field) {
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(spec, 65);
  ASSERT_FALSE(c.ok()) << "expected an error naming " << field;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message().substr(0, field.size() + 1), field + ":") << c.status().message();
}

TEST(ModelConfigTest, NamedSizes) {
  absl::StatusOr<ModelConfig> tiny = ResolveModelConfig(Spec("standard", "tiny"), 65);
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->d_model, 32);
  EXPECT_EQ(tiny->n_layers, 2);
  EXPECT_EQ(tiny->n_heads, 2);
  EXPECT_EQ(tiny->d_ff, 128);
  EXPECT_EQ(tiny->seq_len, 64);
  EXPECT_EQ(tiny->vocab_size, 65);

  absl::StatusOr<ModelConfig> seed = ResolveModelConfig(Spec("worker", ""), 65);
  ASSERT_TRUE(seed.ok()) << seed.status();
  EXPECT_EQ(seed->size, "seed");
  EXPECT_EQ(seed->d_model, 256);
  EXPECT_EQ(seed->n_layers, 4);
  EXPECT_EQ(seed->n_heads, 4);
  EXPECT_EQ(seed->d_ff, 1024);
  EXPECT_EQ(seed->seq_len, 1024);
  EXPECT_DOUBLE_EQ(seed->dropout, 0.1);
  EXPECT_EQ(seed->worker_interval, 4);
  EXPECT_EQ(seed->worker_conv_kernel, 3);

  absl::StatusOr<ModelConfig> gpt2 = ResolveModelConfig(Spec("standard", "124m"), 50257);
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  EXPECT_EQ(gpt2->d_model, 768);
  EXPECT_EQ(gpt2->n_layers, 12);
  EXPECT_EQ(gpt2->n_heads, 12);
  EXPECT_EQ(gpt2->d_ff, 3072);
  EXPECT_EQ(gpt2->seq_len, 1024);
}

// gpt2-small is 124m with GPT-2's padded vocabulary whatever the tokenizer's; the vocabulary may
// be set in the spec, never below the tokenizer's.
TEST(ModelConfigTest, Gpt2SmallPadsTheVocabularyAndVocabSizeIsChecked) {
  absl::StatusOr<ModelConfig> gpt2 = ResolveModelConfig(Spec("standard", "gpt2-small"), 65);
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  EXPECT_EQ(gpt2->vocab_size, 50304);
  EXPECT_EQ(gpt2->d_model, 768);
  EXPECT_EQ(gpt2->n_layers, 12);
  EXPECT_EQ(ResolveModelConfig(Spec("standard", "124m"), 65)->vocab_size, 65);

  v1::ModelSpec padded = Spec("standard", "seed");
  padded.set_vocab_size(128);
  EXPECT_EQ(ResolveModelConfig(padded, 65)->vocab_size, 128);
  padded.set_vocab_size(32);
  ExpectFieldError(padded, "model.vocab_size");  // below the tokenizer's 65
  const absl::StatusOr<ModelConfig> too_small =
      ResolveModelConfig(Spec("standard", "gpt2-small"), 60000);
  ASSERT_FALSE(too_small.ok());
  EXPECT_TRUE(absl::StartsWith(too_small.status().message(), "model.vocab_size"))
      << too_small.status();
}

TEST(ModelConfigTest, OverridesApplyAndDffFollowsWidth) {
  v1::ModelSpec spec = Spec("sparse_depth", "seed");
  spec.set_d_model(128);
  spec.set_n_heads(2);
  spec.set_seq_len(256);
  spec.set_dropout(0.0);
  spec.mutable_sparse_depth()->set_capacity(0.25);
  spec.mutable_sparse_depth()->set_dense_layers(2);
  spec.mutable_sparse_depth()->set_aux_loss_weight(0.1);
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(spec, 256);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_model, 128);
  EXPECT_EQ(c->d_ff, 512);
  EXPECT_EQ(c->n_layers, 4);
  EXPECT_EQ(c->seq_len, 256);
  EXPECT_DOUBLE_EQ(c->dropout, 0.0);
  EXPECT_DOUBLE_EQ(c->sparse_capacity, 0.25);
  EXPECT_EQ(c->sparse_dense_layers, 2);
  EXPECT_DOUBLE_EQ(c->sparse_aux_loss_weight, 0.1);

  spec.set_d_ff(300);
  c = ResolveModelConfig(spec, 256);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_ff, 300);
}

TEST(ModelConfigTest, HybridLayerTypes) {
  v1::ModelSpec spec = Spec("hybrid", "seed");
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(spec, 65);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hybrid_attention_layers, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(c->hybrid_static_mlp_ratio, 2);

  spec.set_n_layers(3);
  c = ResolveModelConfig(spec, 65);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hybrid_attention_layers, (std::vector<bool>{true, true, false}));

  spec.mutable_hybrid()->add_layer_types("mlp");
  spec.mutable_hybrid()->add_layer_types("attn");
  spec.mutable_hybrid()->add_layer_types("mlp");
  spec.mutable_hybrid()->set_static_mlp_ratio(3);
  c = ResolveModelConfig(spec, 65);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hybrid_attention_layers, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(c->hybrid_static_mlp_ratio, 3);
}

TEST(ModelConfigTest, ErrorsNameTheField) {
  ExpectFieldError(Spec("", "tiny"), "model.arch");
  ExpectFieldError(Spec("mamba", "tiny"), "model.arch");
  ExpectFieldError(Spec("standard", "huge"), "model.size");

  v1::ModelSpec spec = Spec("standard", "seed");
  spec.set_n_heads(3);
  ExpectFieldError(spec, "model.n_heads");
  spec.set_n_heads(128);  // head width 2 is fine; 256 heads would give width 1
  EXPECT_TRUE(ResolveModelConfig(spec, 65).ok());
  spec.set_n_heads(256);
  ExpectFieldError(spec, "model.n_heads");  // odd head width cannot be rotated in pairs

  spec = Spec("standard", "seed");
  spec.set_d_model(0);
  ExpectFieldError(spec, "model.d_model");
  spec = Spec("standard", "seed");
  spec.set_n_layers(-1);
  ExpectFieldError(spec, "model.n_layers");
  spec = Spec("standard", "seed");
  spec.set_d_ff(0);
  ExpectFieldError(spec, "model.d_ff");
  spec = Spec("standard", "seed");
  spec.set_seq_len(0);
  ExpectFieldError(spec, "model.seq_len");
  spec = Spec("standard", "seed");
  spec.set_dropout(1.0);
  ExpectFieldError(spec, "model.dropout");

  spec = Spec("worker", "seed");
  spec.mutable_worker()->set_interval(0);
  ExpectFieldError(spec, "model.worker.interval");
  spec = Spec("worker", "seed");
  spec.mutable_worker()->set_conv_kernel(0);
  ExpectFieldError(spec, "model.worker.conv_kernel");

  spec = Spec("sparse_depth", "seed");
  spec.mutable_sparse_depth()->set_capacity(1.0);
  ExpectFieldError(spec, "model.sparse_depth.capacity");
  spec = Spec("sparse_depth", "seed");
  spec.mutable_sparse_depth()->set_dense_layers(5);
  ExpectFieldError(spec, "model.sparse_depth.dense_layers");
  spec = Spec("sparse_depth", "seed");
  spec.mutable_sparse_depth()->set_aux_loss_weight(-1);
  ExpectFieldError(spec, "model.sparse_depth.aux_loss_weight");

  spec = Spec("hybrid", "seed");
  spec.mutable_hybrid()->add_layer_types("attn");
  ExpectFieldError(spec, "model.hybrid.layer_types");
  spec = Spec("hybrid", "seed");
  for (const char* t : {"attn", "conv", "mlp", "mlp"}) spec.mutable_hybrid()->add_layer_types(t);
  ExpectFieldError(spec, "model.hybrid.layer_types[1]");
  spec = Spec("hybrid", "seed");
  spec.mutable_hybrid()->set_static_mlp_ratio(0);
  ExpectFieldError(spec, "model.hybrid.static_mlp_ratio");

  absl::StatusOr<ModelConfig> no_vocab = ResolveModelConfig(Spec("standard", "tiny"), 0);
  EXPECT_FALSE(no_vocab.ok());
}

TEST(ModelConfigTest, ErrorListsKnownArchs) {
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(Spec("mamba", "tiny"), 65);
  ASSERT_FALSE(c.ok());
  for (const std::string& arch : KnownArchs()) {
    EXPECT_NE(c.status().message().find(arch), std::string::npos) << c.status().message();
  }
}

TEST(ModelConfigTest, WorkerPositions) {
  EXPECT_EQ(WorkerPositions(10, 4, 0), (std::vector<int64_t>{3, 7, 9}));
  EXPECT_EQ(WorkerPositions(8, 4, 0), (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(WorkerPositions(8, 4, 1), (std::vector<int64_t>{2, 6, 7}));
  EXPECT_EQ(WorkerPositions(8, 4, 3), (std::vector<int64_t>{0, 4, 7}));
  EXPECT_EQ(WorkerPositions(3, 1, 0), (std::vector<int64_t>{0, 1, 2}));
  // Every position is a worker in exactly one of the k phases (the last in all of them).
  for (int64_t t = 0; t + 1 < 13; ++t) {
    int hits = 0;
    for (int64_t phase = 0; phase < 4; ++phase) {
      for (int64_t w : WorkerPositions(13, 4, phase)) hits += (w == t);
    }
    EXPECT_EQ(hits, 1) << "position " << t;
  }
}

}  // namespace
}  // namespace gauntlet

namespace gauntlet {
namespace {

absl::StatusOr<ModelConfig> ResolveYamlLike(const std::string& arch,
                                            void (*edit)(v1::ModelSpec&) = nullptr) {
  v1::ModelSpec spec;
  spec.set_arch(arch);
  spec.set_size("seed");  // H = 4
  if (edit != nullptr) edit(spec);
  return ResolveModelConfig(spec, 65);
}

TEST(LayerStackConfigTest, SqaPresetsGiveThePapersHeadCounts) {
  struct Case {
    const char* preset;
    int64_t q, kv;
  };
  for (const Case& c :
       {Case{"sqa", 2, 1}, Case{"ssqa", 2, 2}, Case{"xsqa", 1, 1}, Case{"xsmqa", 1, 1}}) {
    v1::ModelSpec spec = Spec("sqa", "seed");
    spec.mutable_sqa()->set_preset(c.preset);
    absl::StatusOr<ModelConfig> config = ResolveModelConfig(spec, 65);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->sqa_q_heads, c.q) << c.preset;
    EXPECT_EQ(config->sqa_kv_heads, c.kv) << c.preset;
    EXPECT_EQ(config->mixers, std::vector<std::string>(4, "sqa"));
  }
  // Default preset ssqa; explicit counts override it.
  v1::ModelSpec spec = Spec("sqa", "seed");
  spec.set_n_heads(8);
  spec.mutable_sqa()->set_n_kv_heads(2);
  absl::StatusOr<ModelConfig> config = ResolveModelConfig(spec, 65);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sqa_q_heads, 4);
  EXPECT_EQ(config->sqa_kv_heads, 2);

  spec = Spec("sqa", "tiny");  // H = 2 cannot be split in four
  spec.mutable_sqa()->set_preset("xsqa");
  ExpectFieldError(spec, "model.sqa.preset");
  spec.mutable_sqa()->set_preset("gqa");
  ExpectFieldError(spec, "model.sqa.preset");
  spec = Spec("sqa", "seed");
  spec.mutable_sqa()->set_n_q_heads(4);
  spec.mutable_sqa()->set_n_kv_heads(3);
  ExpectFieldError(spec, "model.sqa.n_kv_heads");
  spec.mutable_sqa()->set_n_q_heads(5);
  ExpectFieldError(spec, "model.sqa.n_q_heads");
  // Other archs ignore SQA options they do not use.
  spec.set_arch("standard");
  EXPECT_TRUE(ResolveModelConfig(spec, 65).ok());
}

TEST(LayerStackConfigTest, MixersDefaultsAndErrors) {
  absl::StatusOr<ModelConfig> mixed = ResolveYamlLike("mixed");
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->mixers, std::vector<std::string>(4, "attn"));
  EXPECT_EQ(mixed->slice_len, 256);  // four chunks of the 1024 window
  mixed = ResolveYamlLike("mixed", [](v1::ModelSpec& s) {
    for (const char* m : {"attn", "sliced_attn", "static_mlp", "none"}) s.add_mixers(m);
    s.mutable_sliced_attention()->set_slice_len(64);
  });
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ(mixed->mixers, std::vector<std::string>({"attn", "sliced_attn", "static_mlp", "none"}));
  EXPECT_EQ(mixed->slice_len, 64);

  v1::ModelSpec spec = Spec("mixed", "seed");
  spec.add_mixers("attn");
  ExpectFieldError(spec, "model.mixers");  // one entry, four layers
  spec.add_mixers("mamba");
  ExpectFieldError(spec, "model.mixers[1]");
  spec = Spec("mixed", "seed");
  for (int i = 0; i < 4; ++i) spec.add_mixers("sliced_attn");
  spec.mutable_sliced_attention()->set_slice_len(0);
  ExpectFieldError(spec, "model.sliced_attention.slice_len");
}

TEST(LayerStackConfigTest, WorkerMixersTakeTheWorkerOptionsAndDecideTheTrainedPositions) {
  v1::ModelSpec spec = Spec("mixed", "seed");
  for (const char* m : {"worker", "static_mlp", "worker", "none"}) spec.add_mixers(m);
  spec.mutable_worker()->set_interval(8);
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(spec, 65);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->worker_interval, 8);
  EXPECT_TRUE(LayerStackTrainsWorkersOnly(*c));  // nothing else mixes tokens
  c->mixers[3] = "sliced_attn";
  EXPECT_FALSE(LayerStackTrainsWorkersOnly(*c));
  c->mixers = {"attn", "attn", "attn", "attn"};
  EXPECT_FALSE(LayerStackTrainsWorkersOnly(*c));
  spec.mutable_worker()->set_interval(0);
  ExpectFieldError(spec, "model.worker.interval");
}

TEST(LayerStackConfigTest, AttnDropDropsTheDeepestHalfByDefault) {
  absl::StatusOr<ModelConfig> c = ResolveYamlLike("attn_drop");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->mixers, std::vector<std::string>({"attn", "attn", "none", "none"}));
  c = ResolveYamlLike("attn_drop",
                      [](v1::ModelSpec& s) { s.mutable_attn_drop()->add_drop_layers(1); });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->mixers, std::vector<std::string>({"attn", "none", "attn", "attn"}));
  v1::ModelSpec spec = Spec("attn_drop", "seed");
  spec.mutable_attn_drop()->add_drop_layers(4);
  ExpectFieldError(spec, "model.attn_drop.drop_layers[0]");
}

TEST(LayerStackConfigTest, LoopedDefaultsAndOnlyLoopedLoops) {
  absl::StatusOr<ModelConfig> c = ResolveYamlLike("looped");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->loops, 2);
  EXPECT_TRUE(c->loop_input_injection);
  EXPECT_TRUE(c->loop_embedding);
  EXPECT_TRUE(c->loop_inter_linear);
  c = ResolveYamlLike("mixed", [](v1::ModelSpec& s) { s.mutable_looped()->set_loops(3); });
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->loops, 1);
  v1::ModelSpec spec = Spec("looped", "seed");
  spec.mutable_looped()->set_loops(0);
  ExpectFieldError(spec, "model.looped.loops");
  // Looping costs compute, not parameters.
  c = ResolveYamlLike("looped", [](v1::ModelSpec& s) { s.mutable_looped()->set_loops(4); });
  absl::StatusOr<ModelConfig> once =
      ResolveYamlLike("looped", [](v1::ModelSpec& s) { s.mutable_looped()->set_loops(1); });
  const double head = 6.0 * 256 * 65;
  EXPECT_DOUBLE_EQ(TrainingFlopsPerToken(*c, 1024),
                   4 * (TrainingFlopsPerToken(*once, 1024) - head) + head + 3 * 6.0 * 256 * 256);
}

TEST(LayerStackConfigTest, MatFormerDefaultsAndErrors) {
  absl::StatusOr<ModelConfig> c = ResolveYamlLike("matformer");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->matformer_granularities, std::vector<double>({0.125, 0.25, 0.5, 1.0}));
  EXPECT_EQ(MatFormerWidths(*c), std::vector<int64_t>({128, 256, 512, 1024}));
  EXPECT_EQ(c->matformer_train_mode, "joint");
  EXPECT_EQ(c->matformer_eval_granularity, std::vector<int64_t>(4, 3));
  c = ResolveYamlLike("matformer",
                      [](v1::ModelSpec& s) { s.mutable_matformer()->add_eval_granularity(1); });
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->matformer_eval_granularity, std::vector<int64_t>(4, 1));

  v1::ModelSpec spec = Spec("matformer", "seed");
  spec.mutable_matformer()->add_granularities(0.5);
  spec.mutable_matformer()->add_granularities(0.25);
  ExpectFieldError(spec, "model.matformer.granularities");  // must end with 1
  spec.mutable_matformer()->add_granularities(1.0);
  ExpectFieldError(spec, "model.matformer.granularities[1]");  // not ascending
  spec = Spec("matformer", "seed");
  spec.mutable_matformer()->set_train_mode("all");
  ExpectFieldError(spec, "model.matformer.train_mode");
  spec = Spec("matformer", "seed");
  spec.mutable_matformer()->add_eval_granularity(0);
  spec.mutable_matformer()->add_eval_granularity(9);
  ExpectFieldError(spec, "model.matformer.eval_granularity");  // two entries, four layers
  for (int i = 0; i < 2; ++i) spec.mutable_matformer()->add_eval_granularity(0);
  ExpectFieldError(spec, "model.matformer.eval_granularity[1]");
}

TEST(ArchTableTest, OptionsAreCheckedByTheArchThatUsesThem) {
  // One base spec may carry every variant's options; only the arch using them checks them.
  v1::ModelSpec spec = Spec("standard", "seed");
  spec.mutable_worker()->set_interval(0);
  spec.mutable_sparse_depth()->set_capacity(2.0);
  spec.mutable_matformer()->set_train_mode("all");
  spec.mutable_sqa()->set_preset("xsqa");
  spec.mutable_looped()->set_loops(0);
  EXPECT_TRUE(ResolveModelConfig(spec, 65).ok());
  spec.set_arch("worker");
  ExpectFieldError(spec, "model.worker.interval");
  spec.set_arch("sparse_depth");
  ExpectFieldError(spec, "model.sparse_depth.capacity");
  spec.set_arch("matformer");
  ExpectFieldError(spec, "model.matformer.train_mode");
  spec.set_arch("looped");
  ExpectFieldError(spec, "model.looped.loops");
}

TEST(ArchTableTest, EveryArchResolvesAtEverySize) {
  for (const std::string& arch : KnownArchs()) {
    for (const std::string& size : KnownSizes()) {
      absl::StatusOr<ModelConfig> c = ResolveModelConfig(Spec(arch, size), 65);
      // SQA's default preset halves the heads: fine for every named size (H even).
      ASSERT_TRUE(c.ok()) << arch << " " << size << ": " << c.status();
      EXPECT_GT(TrainingFlopsPerToken(*c, c->seq_len), 0.0) << arch << " " << size;
      EXPECT_GT(KvCacheBytesPerToken(*c, c->seq_len, 2), 0.0) << arch << " " << size;
    }
  }
}

// The cache sizes per arch at size seed (d = 256, 4 layers, 4 heads of 64); kv_cache_test checks
// them against the buffers the models really allocate.
TEST(ArchTableTest, KvCacheBytesPerTokenCountsWhatEachArchCaches) {
  const double standard_layer = 2.0 * 256 * 2;  // K and V of width d, bf16
  absl::StatusOr<ModelConfig> standard = ResolveYamlLike("standard");
  ASSERT_TRUE(standard.ok()) << standard.status();
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*standard, 1024, 2), 4 * standard_layer);
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*standard, 1024, 4), 8 * standard_layer);
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*standard, 0, 2), 0.0);
  ModelConfig unknown = *standard;
  unknown.arch = "nope";
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(unknown, 1024, 2), 0.0);

  absl::StatusOr<ModelConfig> worker = ResolveYamlLike("worker");
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*worker, 1024, 2), 4 * standard_layer);
  // Hybrid's default: attention in the first half only.
  absl::StatusOr<ModelConfig> hybrid = ResolveYamlLike("hybrid");
  ASSERT_TRUE(hybrid.ok()) << hybrid.status();
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*hybrid, 1024, 2), 2 * standard_layer);
  // SQA preset sqa: 1 of the 4 nominal heads for keys and values.
  absl::StatusOr<ModelConfig> sqa = ResolveYamlLike("sqa", [](v1::ModelSpec& spec) {
    spec.mutable_sqa()->set_preset("sqa");
  });
  ASSERT_TRUE(sqa.ok()) << sqa.status();
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*sqa, 1024, 2), 4 * standard_layer / 4);
  // Routed layers: C + 1 slots per `context` positions, C = ceil(1.5 * 0.5 * 1024) = 768.
  absl::StatusOr<ModelConfig> sparse = ResolveYamlLike("sparse_depth");
  ASSERT_TRUE(sparse.ok()) << sparse.status();
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*sparse, 1024, 2),
                   standard_layer * (1 + 3 * 769.0 / 1024));
  // Each loop caches its own keys and values.
  absl::StatusOr<ModelConfig> looped = ResolveYamlLike("looped");
  ASSERT_TRUE(looped.ok()) << looped.status();
  int64_t attention_layers = 0;
  for (const std::string& mixer : looped->mixers) attention_layers += mixer == "attn";
  EXPECT_DOUBLE_EQ(KvCacheBytesPerToken(*looped, 1024, 2),
                   looped->loops * attention_layers * standard_layer);
  EXPECT_GT(looped->loops, 1);
}

}  // namespace
}  // namespace gauntlet

#include "common/spec_defaults.h"

namespace gauntlet {

// The defaults reproduce the WorkerTransformer reference pipeline (docs/architectures.md §2:
// char-level data, 90/10 split, B=16, AdamW 3e-4 with PyTorch's betas/eps and wd 0.01 on every
// parameter, constant lr, clip 1.0), so a spec that names only an arch and a budget trains the
// published setup. Everything else is an operational choice, explained where it is not obvious.
void ApplyTrialDefaults(v1::TrialSpec* spec) {
  v1::DataSpec& data = *spec->mutable_data();
  if (data.tokenizer().empty()) data.set_tokenizer("char");
  if (!data.has_val_fraction()) data.set_val_fraction(0.1);

  v1::ModelSpec& model = *spec->mutable_model();
  if (model.size().empty()) model.set_size("seed");

  v1::TrainSpec& train = *spec->mutable_train();
  if (!train.has_batch_size()) train.set_batch_size(16);
  if (!train.has_grad_accum_steps()) train.set_grad_accum_steps(1);
  v1::OptimizerSpec& optimizer = *train.mutable_optimizer();
  if (optimizer.name().empty()) optimizer.set_name("adamw");
  if (!optimizer.has_lr()) optimizer.set_lr(3e-4);
  if (!optimizer.has_beta1()) optimizer.set_beta1(0.9);
  if (!optimizer.has_beta2()) optimizer.set_beta2(0.999);
  if (!optimizer.has_eps()) optimizer.set_eps(1e-8);
  if (!optimizer.has_weight_decay()) optimizer.set_weight_decay(0.01);
  v1::ScheduleSpec& schedule = *train.mutable_schedule();
  if (schedule.kind().empty()) schedule.set_kind("constant");
  if (!schedule.has_warmup_steps()) schedule.set_warmup_steps(0);
  if (!schedule.has_min_lr_ratio()) schedule.set_min_lr_ratio(0.1);
  if (!train.has_grad_clip()) train.set_grad_clip(1.0);
  // "auto": bf16 autocast on CUDA, fp32 on CPU; the trainer decides once it knows the device.
  if (train.precision().empty()) train.set_precision("auto");
  if (!train.has_log_every()) train.set_log_every(10);
  // PyTorch DDP's default bucket size.
  if (!train.has_bucket_mib()) train.set_bucket_mib(25);
  if (!train.has_cuda_graphs()) train.set_cuda_graphs(true);

  v1::EvalSpec& eval = *spec->mutable_eval();
  if (eval.protocol().empty()) eval.set_protocol("fair");
  if (!eval.has_every_steps()) eval.set_every_steps(100);
  if (!eval.has_every_seconds()) eval.set_every_seconds(0);
  if (!eval.has_max_tokens()) eval.set_max_tokens(0);
  // Derived, so it must be applied after variant overrides and grid values (never to the base).
  if (!eval.has_batch_size()) eval.set_batch_size(train.batch_size());
  // The reference repository's 20 periodic / 50 final validation batches.
  if (!eval.has_seed_batches()) eval.set_seed_batches(20);
  if (!eval.has_seed_final_batches()) eval.set_seed_final_batches(50);

  v1::ResourceSpec& resources = *spec->mutable_resources();
  if (!resources.has_gpus_per_trial()) resources.set_gpus_per_trial(1);
  if (!resources.has_max_nodes()) resources.set_max_nodes(1);
  // resources.device stays "" (the scheduler picks gpu when workers have GPUs, else cpu).

  if (spec->kind() == "inference") {
    // The Hybrid GPT claim's context (256) and the long contexts; batch 1 (latency) and
    // 32 (throughput).
    v1::InferenceSpec& inference = *spec->mutable_inference();
    if (inference.prefill_contexts().empty()) {
      for (const int context : {256, 1024, 4096}) inference.add_prefill_contexts(context);
    }
    if (inference.decode_batches().empty()) {
      for (const int batch : {1, 32}) inference.add_decode_batches(batch);
    }
    if (!inference.has_decode_context()) inference.set_decode_context(256);
    if (!inference.has_decode_steps()) inference.set_decode_steps(64);
    if (!inference.has_warmup()) inference.set_warmup(1);
    if (!inference.has_repeats()) inference.set_repeats(3);
    if (!inference.has_cuda_graphs()) inference.set_cuda_graphs(true);
  }

  v1::CheckpointSpec& checkpoint = *spec->mutable_checkpoint();
  if (!checkpoint.has_every_steps()) checkpoint.set_every_steps(0);  // only at the end
  if (!checkpoint.has_keep_last()) checkpoint.set_keep_last(2);
}

void ApplyExperimentDefaults(v1::ExperimentSpec* spec) {
  if (spec->seeds().empty()) spec->add_seeds(0);
  if (!spec->has_max_restarts()) spec->set_max_restarts(1);
  if (spec->baseline().empty() && spec->variants_size() > 0) {
    spec->set_baseline(spec->variants(0).name());
  }
}

}  // namespace gauntlet

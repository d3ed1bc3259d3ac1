// Tokenizes a corpus (or a weighted mixture) into the token cache ahead of a run, with a progress
// bar, and prints what the trainer will see, so a large corpus is tokenized once per node rather
// than per rank. The flags are the data spec's fields.
//
//   prepare_data --path=/usr/src/linux-source-6.1.tar.xz --tokenizer=bpe --vocab_size=16384 \
//       --include_suffixes=.c,.h --split=document --val_fraction=0.01
//   prepare_data --source=prose=/data/prose:3 --source=code=/data/linux.tar.xz:1 --tokenizer=bpe

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gauntlet/v1/spec.pb.h"
#include "trainer/data/token_dataset.h"

ABSL_FLAG(std::string, path, "", "corpus: a file, a directory or a tarball");
ABSL_FLAG(std::vector<std::string>, source, {},
          "mixture source NAME=PATH[:WEIGHT] (repeatable, instead of --path)");
ABSL_FLAG(std::string, tokenizer, "char", "char, byte, bpe or unigram");
ABSL_FLAG(int32_t, vocab_size, 8192, "bpe/unigram vocabulary size");
ABSL_FLAG(std::string, tokenizer_model, "", "a SentencePiece .model to use instead of training");
ABSL_FLAG(int64_t, tokenizer_sample_bytes, 16 << 20, "bytes of lines sampled to train bpe/unigram");
ABSL_FLAG(std::string, split, "position", "position or document");
ABSL_FLAG(double, val_fraction, 0.1, "fraction held out for validation");
ABSL_FLAG(std::string, cache_dir, "",
          "token cache directory (default $GAUNTLET_CACHE or ~/.cache/gauntlet/tokens)");
ABSL_FLAG(std::vector<std::string>, include_suffixes, {}, "file name suffixes to read");
ABSL_FLAG(int64_t, max_bytes, 0, "upper bound on corpus bytes read (0 = none)");
ABSL_FLAG(int32_t, threads, 0, "encoding threads (0 = every core)");

namespace {

// One status line on stderr, redrawn in place on a terminal, every 2 s otherwise.
class ProgressBar {
 public:
  ProgressBar() : tty_(isatty(STDERR_FILENO) != 0) {}
  void Update(const char* phase, int64_t done, int64_t total) {
    const double now = Now();
    if (phase_ == phase && now - last_ < (tty_ ? 0.2 : 2.0) && done != total) return;
    if (phase_ != phase && !phase_.empty()) End();
    if (phase_ != phase) phase_start_ = now;
    phase_ = phase;
    last_ = now;
    const double mb = done / 1e6;
    const double rate = now - phase_start_ > 0.5 ? mb / (now - phase_start_) : 0.0;
    std::string line;
    if (total > 0) {
      const double f = std::min(1.0, static_cast<double>(done) / total);
      const int filled = static_cast<int>(f * 30);
      line = absl::StrFormat("%-16s [%s%s] %5.1f%% %9.1f MB %7.1f MB/s  eta %4.0fs", phase,
                             std::string(filled, '#'), std::string(30 - filled, '.'), 100 * f,
                             mb, rate, rate > 0 ? (total - done) / 1e6 / rate : 0.0);
    } else {
      line = absl::StrFormat("%-16s %9.1f MB %7.1f MB/s", phase, mb, rate);
    }
    std::fprintf(stderr, tty_ ? "\r%s\033[K" : "%s\n", line.c_str());
  }
  void End() {
    if (tty_ && !phase_.empty()) std::fprintf(stderr, "\n");
  }

 private:
  static double Now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  bool tty_;
  double last_ = 0, phase_start_ = 0;  // seconds
  std::string phase_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  gauntlet::v1::DataSpec spec;
  spec.set_path(absl::GetFlag(FLAGS_path));
  for (const std::string& s : absl::GetFlag(FLAGS_source)) {
    std::vector<std::string> name_rest = absl::StrSplit(s, absl::MaxSplits('=', 1));
    if (name_rest.size() != 2) {
      std::cerr << "prepare_data: --source wants NAME=PATH[:WEIGHT], got " << s << "\n";
      return 2;
    }
    gauntlet::v1::DataSource* source = spec.add_sources();
    source->set_name(name_rest[0]);
    std::string path = name_rest[1];
    const size_t colon = path.rfind(':');
    double weight;
    if (colon != std::string::npos && absl::SimpleAtod(path.substr(colon + 1), &weight)) {
      source->set_weight(weight);
      path = path.substr(0, colon);
    }
    source->set_path(path);
    for (const std::string& x : absl::GetFlag(FLAGS_include_suffixes)) {
      source->add_include_suffixes(x);
    }
    source->set_max_bytes(absl::GetFlag(FLAGS_max_bytes));
  }
  spec.set_tokenizer(absl::GetFlag(FLAGS_tokenizer));
  if (spec.tokenizer() == "bpe" || spec.tokenizer() == "unigram") {
    spec.set_vocab_size(absl::GetFlag(FLAGS_vocab_size));
    spec.set_tokenizer_sample_bytes(absl::GetFlag(FLAGS_tokenizer_sample_bytes));
    spec.set_tokenizer_model(absl::GetFlag(FLAGS_tokenizer_model));
  }
  spec.set_split(absl::GetFlag(FLAGS_split));
  spec.set_val_fraction(absl::GetFlag(FLAGS_val_fraction));
  spec.set_cache_dir(absl::GetFlag(FLAGS_cache_dir));
  if (spec.sources_size() == 0) {
    for (const std::string& s : absl::GetFlag(FLAGS_include_suffixes)) {
      spec.add_include_suffixes(s);
    }
    spec.set_max_bytes(absl::GetFlag(FLAGS_max_bytes));
  }

  ProgressBar bar;
  gauntlet::OpenOptions options;
  options.num_threads = absl::GetFlag(FLAGS_threads);
  options.progress = [&](const char* phase, int64_t done, int64_t total) {
    bar.Update(phase, done, total);
  };
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<gauntlet::TokenDataset> ds = gauntlet::TokenDataset::Open(spec, options);
  bar.End();
  if (!ds.ok()) {
    std::cerr << "prepare_data: " << ds.status().message() << "\n";
    return 3;  // the trainer's exit code for bad data
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "cache " << ds->cache_path() << "\n"
            << "tokenizer " << ds->tokenizer().kind_name() << " vocab_size " << ds->vocab_size()
            << "\n"
            << "tokens " << ds->total_size() << " train " << ds->train_size() << " val "
            << ds->val_size() << " (" << ds->token_bytes() << " bytes/token)\n";
  for (const gauntlet::TokenDataset::Source& s : ds->sources()) {
    std::cout << absl::StrFormat(
        "source %s weight %.3f train %d tokens (%d docs) val %d tokens (%d docs)\n", s.name,
        s.weight, s.train_size, s.train_documents, s.val_size, s.val_documents);
  }
  std::cout << "seconds " << seconds << "\n";
  return 0;
}

// Tokenizes a corpus into the token cache ahead of a run and prints what the trainer will see,
// so a large corpus (e.g. the kernel source tarball) is tokenized once per node, not per rank.
//
//   prepare_data --path=/usr/src/linux-source-6.1.tar.xz --tokenizer=byte \
//       --include_suffixes=.c,.h --max_bytes=200000000

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "gauntlet/v1/spec.pb.h"
#include "trainer/data/token_dataset.h"

ABSL_FLAG(std::string, path, "", "corpus: a file, a directory or a tarball");
ABSL_FLAG(std::string, tokenizer, "char", "\"char\" or \"byte\"");
ABSL_FLAG(double, val_fraction, 0.1, "fraction of tokens, from the end, used for validation");
ABSL_FLAG(std::string, cache_dir, "",
          "token cache directory (default $GAUNTLET_CACHE or ~/.cache)");
ABSL_FLAG(std::vector<std::string>, include_suffixes, {}, "file name suffixes to read");
ABSL_FLAG(int64_t, max_bytes, 0, "upper bound on corpus bytes read (0 = none)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  gauntlet::v1::DataSpec spec;
  spec.set_path(absl::GetFlag(FLAGS_path));
  spec.set_tokenizer(absl::GetFlag(FLAGS_tokenizer));
  spec.set_val_fraction(absl::GetFlag(FLAGS_val_fraction));
  spec.set_cache_dir(absl::GetFlag(FLAGS_cache_dir));
  for (const std::string& s : absl::GetFlag(FLAGS_include_suffixes)) spec.add_include_suffixes(s);
  spec.set_max_bytes(absl::GetFlag(FLAGS_max_bytes));

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<gauntlet::TokenDataset> ds = gauntlet::TokenDataset::Open(spec);
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
            << ds->val_size() << " (" << ds->token_bytes() << " bytes/token)\n"
            << "seconds " << seconds << "\n";
  return 0;
}
